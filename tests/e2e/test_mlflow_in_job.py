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


SCOPED = """\
import sys

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

other = sys.argv[1]
with mlflow.start_run() as run:  # the job's own run (MLFLOW_RUN_ID)
    mlflow.log_metric("own", 1.0)
    with mlflow.start_run(nested=True) as child:
        mlflow.log_metric("child", 2.0)
    print("CHILD", child.info.run_id, "PARENT", run.info.run_id)
    mlflow.log_text("weights", "model/weights.txt")
try:
    MlflowClient().log_metric(other, "stolen", 3.0)
    print("NOT DENIED")
except MlflowException as exc:
    print("DENIED", exc.error_code)
# A job registers what it produced; moving an alias needs more than a job token.
client = MlflowClient()
client.create_registered_model("from-job")
version = client.create_model_version("from-job", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
print("REGISTERED", version.version)
try:
    client.set_registered_model_alias("from-job", "prod", version.version)
    print("ALIAS SET")
except MlflowException as exc:
    print("ALIAS", exc.error_code)
"""


def test_job_token_logs_to_its_own_and_nested_runs_only(jobs_cli, tmp_path, monkeypatch):
    server = json.loads((jobs_cli.home / "server.json").read_text())
    url = server.get("url") or f"http://127.0.0.1:{server['port']}"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", (jobs_cli.home / "token").read_text().strip())
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = mlflow.tracking.MlflowClient(f"{url}/api/v1/workspaces/default/mlflow")
    other = client.create_run("0").info.run_id  # someone else's run

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "scoped.py").write_text(SCOPED)
    path = write_job(
        tmp_path,
        f"""
        command: python scoped.py {other}
        code: src
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
    assert "DENIED PERMISSION_DENIED" in logs, logs
    child = logs.split("CHILD ", 1)[1].split()[0]
    assert f"PARENT {name}" in logs
    assert job["metrics"]["own"] == 1.0
    assert client.get_run(child).data.metrics == {"child": 2.0}
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == name
    assert "stolen" not in client.get_run(other).data.metrics
    assert "REGISTERED 1" in logs and "ALIAS PERMISSION_DENIED" in logs, logs
    shown = json.loads(jobs_cli("model", "show", "-n", "from-job", "-v", "1").out)
    assert shown["job_name"] == name and shown["path"].rstrip("/").endswith(f"dcid.{name}/model")
