"""A real job that logs through MLflow from inside its runner, without set_tracking_uri or
start_run: params, metrics and artifacts land in the job (issue 4)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import wait_for, write_job

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.e2e

SCRIPT = (
    "import mlflow; mlflow.log_param('p', 1); "
    "[mlflow.log_metric('loss', 1/(i+1), step=i) for i in range(5)]; "
    "mlflow.log_text('hi', 'notes/a.txt')"
)


def test_job_logs_params_metrics_and_artifacts_through_mlflow(jobs_cli, tmp_path, monkeypatch):
    path = write_job(
        tmp_path,
        f"""
        command: python -c "{SCRIPT}"
        environment:
          image: python:3.11
          conda_file:
            dependencies:
              - python=3.11
              - pip:
                  - mlflow-skinny
        """,
    )
    name = jobs_cli("job", "create", "--file", str(path), "--query", "name", "-o", "tsv").out.strip()
    job = wait_for(jobs_cli, name, timeout=280)
    logs = jobs_cli("job", "stream", "-n", name, check=False).out
    assert job["status"] == "Completed", logs
    assert job["params"] == {"p": "1"}
    assert job["metrics"]["loss"] == pytest.approx(0.2)

    server = json.loads((jobs_cli.home / "server.json").read_text())
    url = server.get("url") or f"http://127.0.0.1:{server['port']}"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", (jobs_cli.home / "token").read_text().strip())
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = mlflow.tracking.MlflowClient(f"{url}/api/v1/workspaces/default/mlflow")
    history = client.get_metric_history(name, "loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(i, round(1 / (i + 1), 4)) for i in range(5)]
    assert client.get_run(name).info.status == "FINISHED"

    dl = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--all", "--download-path", str(dl))
    notes = list(dl.rglob("notes/a.txt"))
    assert notes and notes[0].read_text() == "hi"
