"""The metric store on SQLite and PostgreSQL: replayed batches add nothing, history pages in order,
the latest value follows MLflow's rule (max step, then max timestamp)."""

from __future__ import annotations

import pytest

from shoal.config import ShoalSettings
from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import queries as job_queries
from shoal.services.tracking import experiments as tracking_experiments
from shoal.services.tracking import metrics as tracking_metrics
from shoal.services.tracking import run_search as tracking_search
from shoal.services.tracking import runs as tracking_runs
from shoal.services.workspaces import ensure_default


@pytest.fixture
def ctx(database_url, shoal_home, monkeypatch):
    monkeypatch.setenv("SHOAL_DATABASE_URL", database_url)
    context = ServiceContext.from_settings(ShoalSettings())
    context.db.migrate()
    ensure_default(context)
    yield context
    context.close()


def test_replayed_batch_history_paging_and_latest(ctx):
    run = tracking_runs.create_run(ctx, "default", {"experiment_id": "0"})["run"]["info"]["run_id"]
    batch = {
        "run_id": run,
        "metrics": [{"key": "loss", "value": 10.0 - i / 100, "timestamp": 1000 + i, "step": i} for i in range(999)],
        "params": [{"key": "p", "value": "1"}],
    }
    tracking_metrics.log_batch(ctx, "default", batch)
    tracking_metrics.log_batch(ctx, "default", batch)
    tracking_metrics.log_batch(
        ctx, "default", {"run_id": run, "metrics": [{"key": "loss", "value": "NaN", "timestamp": 1, "step": 0}]}
    )
    # an older step never replaces the latest value
    tracking_metrics.log_metric(
        ctx, "default", {"run_id": run, "key": "loss", "value": 99, "timestamp": 5000, "step": 3}
    )
    seen, token = [], None
    while True:
        page = tracking_metrics.get_metric_history(
            ctx, "default", {"run_id": run, "metric_key": "loss", "max_results": 300, "page_token": token}
        )
        seen += [(m["step"], m["timestamp"]) for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert len(seen) == 1001 and seen == sorted(seen)
    assert seen[0] == (0, 1)  # the NaN point
    body = job_queries.get(ctx, "default", run)
    assert body["metrics"] == {"loss": pytest.approx(10.0 - 998 / 100)} and body["params"] == {"p": "1"}
    with pytest.raises(UserError):
        tracking_runs.log_param(ctx, "default", {"run_id": run, "key": "p", "value": "2"})
    found = tracking_search.search_runs(
        ctx, "default", {"experiment_ids": ["0"], "filter": "metrics.loss < 9 AND params.p = '1'"}
    )
    assert [r["info"]["run_id"] for r in found["runs"]] == [run]


def test_history_pages_of_a_large_metric_lose_and_repeat_nothing(ctx):
    """25,000 points, page boundaries inside groups of points that share step and timestamp (they
    differ by value; some are NaN, one is infinite): every point comes back exactly once, in
    order, at any page size, and a replayed batch adds nothing."""
    import math

    run = tracking_runs.create_run(ctx, "default", {"experiment_id": "0"})["run"]["info"]["run_id"]

    def point(i: int) -> dict:
        value: float | str = float((i % 10) // 2) + 0.25
        if i % 997 == 0:
            value = "NaN"
        elif i == 12_345:
            value = "Infinity"
        return {"key": "big", "value": value, "timestamp": 1000 + i % 2, "step": i // 10}

    batches = [[point(i) for i in range(b, b + 1000)] for b in range(0, 25_000, 1000)]
    for metrics in batches:
        tracking_metrics.log_batch(ctx, "default", {"run_id": run, "metrics": metrics})
    tracking_metrics.log_batch(ctx, "default", {"run_id": run, "metrics": batches[7]})  # a replay

    def order(m: dict) -> tuple:
        nan = m["value"] == "NaN"
        value = 0.0 if nan else (math.inf if m["value"] == "Infinity" else m["value"])
        return (m["step"], m["timestamp"], value, nan)

    expected = sorted(order(point(i)) for i in range(25_000))
    for size in (997, 5000):
        seen, token, pages = [], None, 0
        while True:
            query = {"run_id": run, "metric_key": "big", "max_results": size, "page_token": token}
            page = tracking_metrics.get_metric_history(ctx, "default", query)
            pages += 1
            seen += [order(m) for m in page["metrics"]]
            token = page.get("next_page_token")
            if not token:
                break
        assert pages == -(-25_000 // size)
        assert len(seen) == len(set(seen)) == 25_000
        assert seen == expected
    whole = tracking_metrics.get_metric_history(ctx, "default", {"run_id": run, "metric_key": "big"})["metrics"]
    assert [order(m) for m in whole] == expected


def test_search_ordered_by_a_metric_with_and_without_a_filter_on_it(ctx):
    """Ordered by a metric the filter also names (an inner join walked in value order) or not (an
    outer join: runs without the metric come last); pages follow each other without gaps."""
    exp = tracking_experiments.create_experiment(ctx, "default", {"name": "order"})["experiment_id"]
    names = {}
    for i, acc in enumerate([0.3, 0.9, None, 0.6, 0.1, None, 0.75]):
        run = tracking_runs.create_run(ctx, "default", {"experiment_id": exp, "start_time": 1000 + i})["run"]["info"]
        names[run["run_id"]] = acc
        if acc is not None:
            tracking_metrics.log_metric(
                ctx, "default", {"run_id": run["run_id"], "key": "acc", "value": acc, "timestamp": 1}
            )

    def search(**extra) -> list:
        out, token = [], None
        while True:
            page = tracking_search.search_runs(
                ctx, "default", {"experiment_ids": [exp], "max_results": 2, "page_token": token, **extra}
            )
            out += [names[r["info"]["run_id"]] for r in page["runs"]]
            token = page.get("next_page_token")
            if not token:
                return out

    assert search(order_by=["metrics.acc DESC"]) == [0.9, 0.75, 0.6, 0.3, 0.1, None, None]
    assert search(order_by=["metrics.acc ASC"]) == [0.1, 0.3, 0.6, 0.75, 0.9, None, None]
    assert search(order_by=["metrics.acc DESC"], filter="metrics.acc > 0.2") == [0.9, 0.75, 0.6, 0.3]
    assert search(order_by=["metrics.acc ASC"], filter="metrics.acc < 0.8") == [0.1, 0.3, 0.6, 0.75]
    assert len(search()) == 7


def test_metric_validation_is_the_same_on_the_fast_lane_and_off_it(ctx):
    """The usual point shape (float value, int or numeric-string timestamp and step) takes a fast
    lane; every point is still checked with MLflow's messages, and a batch with one bad point
    stores nothing."""
    run = tracking_runs.create_run(ctx, "default", {"experiment_id": "0"})["run"]["info"]["run_id"]
    good = {"key": "m", "value": 1.5, "timestamp": "1000", "step": "2"}
    bad = [
        ({"key": "bad*key", "value": 1.0, "timestamp": 1, "step": 0}, "Invalid metric name"),
        ({"key": "/abs", "value": 1.0, "timestamp": 1, "step": 0}, "Invalid metric name"),
        ({"key": "m", "value": True, "timestamp": 1, "step": 0}, "Got invalid value True"),
        ({"key": "m", "value": "x", "timestamp": 1, "step": 0}, "Got invalid value 'x'"),
        ({"key": "m", "value": 1.0, "timestamp": "", "step": 0}, "Missing value for required parameter 'timestamp'"),
        ({"key": "m", "value": 1.0, "timestamp": "soon", "step": 0}, "Got invalid timestamp or step"),
        ({"key": "m", "value": 1.0, "timestamp": 1, "step": "later"}, "Got invalid timestamp or step"),
        ({"key": "m", "value": 1.0, "step": 0}, "Missing value for required parameter 'timestamp'"),
    ]
    for point, message in bad:
        with pytest.raises(UserError, match=message):
            tracking_metrics.log_batch(ctx, "default", {"run_id": run, "metrics": [good, point]})
    assert tracking_metrics.get_metric_history(ctx, "default", {"run_id": run, "metric_key": "m"})["metrics"] == []
    nan = {"key": "m", "value": float("nan"), "timestamp": 5, "step": None}
    tracking_metrics.log_batch(ctx, "default", {"run_id": run, "metrics": [good, nan, {**good, "value": 7}]})
    got = tracking_metrics.get_metric_history(ctx, "default", {"run_id": run, "metric_key": "m"})["metrics"]
    assert [(m["step"], m["timestamp"], m["value"]) for m in got] == [(0, 5, "NaN"), (2, 1000, 1.5), (2, 1000, 7.0)]
