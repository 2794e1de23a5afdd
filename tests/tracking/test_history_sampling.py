"""``metrics/get-history-bulk-interval`` on SQLite and PostgreSQL: MLflow's sampling (evenly
spaced buckets of each run's ordered points, the last point always kept), step ranges, several
runs, and the checks MLflow makes on its arguments; then once over HTTP with repeated run_ids."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from shoal.config import ShoalSettings
from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.tracking import metrics as tracking_metrics
from shoal.services.tracking import runs as tracking_runs
from shoal.services.tracking.history_sampling import get_metric_history_bulk_interval as bulk
from shoal.services.workspaces import ensure_default


@pytest.fixture
def ctx(database_url, shoal_home, monkeypatch):
    monkeypatch.setenv("SHOAL_DATABASE_URL", database_url)
    context = ServiceContext.from_settings(ShoalSettings())
    context.db.migrate()
    ensure_default(context)
    yield context
    context.close()


def expected(points: list[tuple[int, int, float]], n: int) -> list[tuple[int, int, float]]:
    """The reference: NTILE(n) over the ordered points, first of each bucket, last point kept."""
    points = sorted(points)
    if len(points) <= n:
        return points
    size, extra = divmod(len(points), n)
    sample = [points[b * size + min(b, extra)] for b in range(n)]
    if sample[-1] != points[-1]:
        sample[-1] = points[-1]
    return sample


def _run(ctx, points: list[tuple[int, int, float]], key: str = "loss") -> str:
    run = tracking_runs.create_run(ctx, "default", {"experiment_id": "0"})["run"]["info"]["run_id"]
    for i in range(0, len(points), 1000):
        metrics = [{"key": key, "value": v, "timestamp": t, "step": s} for s, t, v in points[i : i + 1000]]
        tracking_metrics.log_batch(ctx, "default", {"run_id": run, "metrics": metrics})
    return run


def _got(body, run: str) -> list[tuple[int, int, float]]:
    return [(m["step"], m["timestamp"], m["value"]) for m in body["metrics"] if m["run_id"] == run]


def test_sampling_follows_mlflow(ctx):
    long = [(s, 1000 + s, float(s % 7)) for s in range(0, 2000, 2)]  # 1000 points, steps 0..1998
    flat = [(0, 1000 + i, float(i)) for i in range(300)]  # every point on step 0
    short = [(s, 5000 + s, 1.0 / (s + 1)) for s in range(5)]
    runs = {name: _run(ctx, pts) for name, pts in (("long", long), ("flat", flat), ("short", short))}

    for n in (1, 2, 3, 7, 100, 999, 1000, 2500):
        body = bulk(ctx, "default", {"run_ids": list(runs.values()), "metric_key": "loss", "max_results": n})
        for name, pts in (("long", long), ("flat", flat), ("short", short)):
            assert _got(body, runs[name]) == expected(pts, n), (name, n)
    # Runs answer in the order asked; points of one run in (step, timestamp) order.
    body = bulk(ctx, "default", {"run_ids": [runs["short"], runs["long"]], "metric_key": "loss", "max_results": 3})
    assert [m["run_id"] for m in body["metrics"]] == [runs["short"]] * 3 + [runs["long"]] * 3
    assert set(body["metrics"][0]) == {"key", "value", "timestamp", "step", "run_id"}

    # A step range: only points inside it, sampled the same way.
    body = bulk(
        ctx,
        "default",
        {"run_ids": [runs["long"]], "metric_key": "loss", "max_results": 10, "start_step": 100, "end_step": 301},
    )
    inside = [p for p in long if 100 <= p[0] <= 301]
    assert _got(body, runs["long"]) == expected(inside, 10)
    assert _got(body, runs["long"])[-1][0] == 300

    # Default max_results is 2500: a 1000-point run comes back whole.
    assert len(_got(bulk(ctx, "default", {"run_ids": [runs["long"]], "metric_key": "loss"}), runs["long"])) == 1000
    # Unknown runs and metrics answer nothing, as MLflow's server does.
    assert bulk(ctx, "default", {"run_ids": ["nope"], "metric_key": "loss"}) == {"metrics": []}
    assert bulk(ctx, "default", {"run_ids": [runs["long"]], "metric_key": "other"}) == {"metrics": []}


def test_nan_and_argument_checks(ctx):
    run = _run(ctx, [(0, 1, 1.0), (1, 2, float("nan"))])
    body = bulk(ctx, "default", {"run_ids": run, "metric_key": "loss"})  # one run id given as a string
    assert [m["value"] for m in body["metrics"]][0] == 1.0 and body["metrics"][1]["value"] == "NaN"
    assert math.isnan(float(body["metrics"][1]["value"]))
    bad = [
        {"run_ids": [], "metric_key": "loss"},
        {"run_ids": [f"r{i}" for i in range(101)], "metric_key": "loss"},
        {"run_ids": [run]},
        {"run_ids": [run], "metric_key": "loss", "max_results": 0},
        {"run_ids": [run], "metric_key": "loss", "max_results": 2501},
        {"run_ids": [run], "metric_key": "loss", "start_step": 1},
        {"run_ids": [run], "metric_key": "loss", "start_step": 5, "end_step": 1},
        {"run_ids": [run], "metric_key": "loss", "max_results": "x"},
    ]
    for data in bad:
        with pytest.raises(UserError):
            bulk(ctx, "default", data)


@pytest.mark.e2e
def test_over_http_with_repeated_run_ids(mlflow_env):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = []
    for offset in (0, 10):
        run = client.create_run("0").info.run_id
        for step in range(50):
            client.log_metric(run, "acc", offset + step, step=step, timestamp=1000 + step)
        runs.append(run)
    server = json.loads((mlflow_env.home / "server.json").read_text())
    url = server.get("url") or f"http://127.0.0.1:{server['port']}"
    token = (mlflow_env.home / "token").read_text().strip()
    for base in ("api", "ajax-api"):
        reply = httpx.get(
            f"{url}/api/v1/workspaces/default/mlflow/{base}/2.0/mlflow/metrics/get-history-bulk-interval",
            params=[("run_ids", runs[0]), ("run_ids", runs[1]), ("metric_key", "acc"), ("max_results", "5")],
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 200, reply.text
        metrics = reply.json()["metrics"]
        assert [m["step"] for m in metrics if m["run_id"] == runs[0]] == [0, 10, 20, 30, 49]
        assert [m["value"] for m in metrics if m["run_id"] == runs[1]] == [10, 20, 30, 40, 59]
    reply = httpx.get(
        f"{url}/api/v1/workspaces/default/mlflow/api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": runs[0], "metric_key": "acc", "start_step": "3"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 400 and reply.json()["error_code"] == "INVALID_PARAMETER_VALUE"
