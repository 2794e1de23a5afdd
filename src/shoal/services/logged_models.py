"""MLflow 3 logged models (``/mlflow/logged-models``)."""

from __future__ import annotations

from typing import Any

from shoal.services.context import ServiceContext


def search_logged_models(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"models": []}
