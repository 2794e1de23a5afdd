"""Model asset (``_schema/assets/model.py``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from shoal.entities.base import Asset


class Model(Asset):
    KIND: ClassVar[str] = "model"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Asset.READ_ONLY_FIELDS + ("job_name", "utc_time_created")

    type: Literal["custom_model", "mlflow_model", "triton_model"] = "custom_model"
    path: str
    stage: str | None = None
    flavors: dict[str, Any] | None = None
    datastore: str | None = None
    job_name: str | None = None
    utc_time_created: str | None = None
