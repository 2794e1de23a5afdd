"""A real Shoal server for the real MLflow client (it speaks HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cli


@pytest.fixture(scope="module")
def tracking_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("tracking-home")
    runner = Cli(home)
    runner("server", "start", "--detach")
    try:
        yield runner
    finally:
        runner("server", "stop", check=False)


@pytest.fixture
def mlflow_env(tracking_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Point the MLflow client at the workspace, as a user outside any job would."""
    server = json.loads((tracking_cli.home / "server.json").read_text())
    url = server.get("url") or f"http://127.0.0.1:{server['port']}"
    token = (tracking_cli.home / "token").read_text().strip()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{url}/api/v1/workspaces/default/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    import mlflow

    mlflow.set_tracking_uri(f"{url}/api/v1/workspaces/default/mlflow")
    # An experiment set by an earlier module's set_experiment() belongs to another server.
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    return tracking_cli
