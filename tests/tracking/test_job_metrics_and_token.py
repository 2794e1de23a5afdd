"""``shoal job metrics`` and ``shoal account get-access-token`` with the real MLflow client."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = pytest.mark.e2e


def _run_with_history(client: MlflowClient) -> str:
    exp_id = client.create_experiment(f"metrics-{uuid.uuid4().hex[:8]}")
    rid = client.create_run(exp_id, run_name="hist").info.run_id
    now = int(time.time() * 1000)
    client.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 1), now + s, s) for s in range(7)])
    client.log_batch(rid, metrics=[Metric("acc", 0.5, now, 0), Metric("acc", float("nan"), now + 1, 1)])
    return rid


def test_job_metrics_cli_table_json_and_one_metric(mlflow_env):
    rid = _run_with_history(MlflowClient())
    cli = mlflow_env
    rows = json.loads(cli("job", "metrics", "-n", rid, "-o", "json").out)
    assert [r["name"] for r in rows] == ["acc"] * 2 + ["loss"] * 7
    loss = [r for r in rows if r["name"] == "loss"]
    assert [r["step"] for r in loss] == list(range(7))
    assert loss[3]["value"] == pytest.approx(0.25)
    assert all(isinstance(r["timestamp"], int) for r in rows)
    assert rows[1]["value"] == "NaN"  # JSON has no NaN: spelt as MLflow spells it
    only = json.loads(cli("job", "metrics", "-n", rid, "--metric", "loss", "-o", "json").out)
    assert only == loss
    table = cli("job", "metrics", "-n", rid, "--metric", "loss", "-o", "table").out
    header = table.splitlines()[1]
    assert all(col in header for col in ("Name", "Step", "Value", "Timestamp"))
    assert table.count("loss") == 7
    values = cli("job", "metrics", "-n", rid, "--metric", "loss", "--query", "[].value", "-o", "tsv").out.split()
    assert [float(v) for v in values] == pytest.approx([1.0 / (s + 1) for s in range(7)])
    missing = cli("job", "metrics", "-n", rid, "--metric", "nope", check=False)
    assert missing.code == 1 and "NOT_FOUND" in missing.err and "loss" in missing.err
    absent = cli("job", "metrics", "-n", "no_such_job_x", check=False)
    assert absent.code == 1 and "NOT_FOUND" in absent.err


def test_job_metrics_summary_and_iso_table(mlflow_env):
    rid = _run_with_history(MlflowClient())
    cli = mlflow_env
    summary = {r["name"]: r for r in json.loads(cli("job", "metrics", "-n", rid, "--summary", "-o", "json").out)}
    loss, acc = summary["loss"], summary["acc"]
    assert loss["count"] == 7 and loss["goal"] == "minimize" and loss["best_step"] == 6 == loss["min_step"]
    assert loss["min"] == pytest.approx(1 / 7) and loss["max"] == 1.0 and loss["max_step"] == 0
    assert loss["last"] == pytest.approx(1 / 7) and loss["last_step"] == 6 and loss["last_time"].endswith("+00:00")
    assert acc["count"] == 2 and acc["goal"] == "maximize" and acc["last"] == "NaN" and acc["best"] == 0.5
    flipped = json.loads(cli("job", "metrics", "-n", rid, "--metric", "loss", "--summary", "--goal", "maximize").out)
    assert flipped[0]["goal"] == "maximize" and flipped[0]["best_step"] == 0
    table = cli("job", "metrics", "-n", rid, "--summary", "-o", "table").out
    assert all(col in table.splitlines()[1] for col in ("Name", "Count", "Last", "Min", "Max", "Goal"))
    history = cli("job", "metrics", "-n", rid, "--metric", "loss", "-o", "table").out
    assert "T" in history.splitlines()[3] and "+00:00" in history  # ISO-8601, not epoch ms
    bad = cli("job", "metrics", "-n", rid, "--summary", "--goal", "up", check=False)
    assert bad.code == 1 and "--goal must be one of" in bad.err
    assert cli("job", "metrics", "-n", rid, "--goal", "minimize", check=False).code == 1


def test_sdk_get_metrics_pages_through_history(mlflow_env):
    from shoal.client.ml_client import MLClient

    rid = _run_with_history(MlflowClient())
    server = json.loads((mlflow_env.home / "server.json").read_text())
    token = (mlflow_env.home / "token").read_text().strip()
    ml_client = MLClient(base_url=server["url"], token=token)
    rows = ml_client.jobs.get_metrics(rid, "loss", page_size=2)  # four pages
    assert [(r["name"], r["step"]) for r in rows] == [("loss", s) for s in range(7)]
    both = ml_client.jobs.get_metrics(rid)
    assert len(both) == 9 and math.isnan(both[1]["value"])
    assert ml_client.jobs.get_metrics(MlflowClient().create_run("0").info.run_id) == []
    summary = ml_client.jobs.get_metrics_summary(rid, goal="maximize")
    assert [(s["name"], s["count"], s["best_step"]) for s in summary] == [("acc", 2, 0), ("loss", 7, 0)]


def test_access_token_and_tracking_uri_drive_the_mlflow_client(tracking_cli, tmp_path):
    cli = tracking_cli
    token_body = json.loads(cli("account", "get-access-token").out)
    assert token_body["tokenType"] == "Bearer" and "expiresOn" in token_body
    assert token_body["accessToken"] == (cli.home / "token").read_text().strip()
    token = cli("account", "get-access-token", "--query", "accessToken", "-o", "tsv").out.strip()
    uri = cli("workspace", "show", "--query", "mlflow_tracking_uri", "-o", "tsv").out.strip()
    assert token == token_body["accessToken"] and uri.endswith("/api/v1/workspaces/default/mlflow")
    # What a user runs in a shell after the two exports: a fresh process, nothing else set.
    script = (
        "import mlflow\n"
        "from mlflow.tracking import MlflowClient\n"
        "c = MlflowClient()\n"
        "e = c.create_experiment('outside-' + __import__('uuid').uuid4().hex[:6])\n"
        "r = c.create_run(e).info.run_id\n"
        "c.log_metric(r, 'm', 3.0)\n"
        "print(r, c.get_run(r).data.metrics['m'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHOAL_"))}
    env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_TOKEN=token, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id, value = out.stdout.split()
    assert float(value) == 3.0
    assert json.loads(cli("job", "show", "-n", run_id).out)["metrics"] == {"m": 3.0}
    env["MLFLOW_TRACKING_TOKEN"] = "not-the-token"
    bad = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "UNAUTHENTICATED" in bad.stderr


def test_mlflow_client_reads_history_the_cli_shows(mlflow_env):
    client = MlflowClient()
    rid = _run_with_history(client)
    cli_rows = json.loads(mlflow_env("job", "metrics", "-n", rid, "--metric", "loss").out)
    history = client.get_metric_history(rid, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (r["step"], r["value"], r["timestamp"]) for r in cli_rows
    ]
    with pytest.raises(MlflowException):
        client.get_metric_history("no-such-run", "loss")
