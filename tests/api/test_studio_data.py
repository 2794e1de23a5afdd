"""The studio's data calls, on the real app over SQLite and PostgreSQL: the jobs page's search,
metric series down-sampled on the server, the live state under an ETag, code snapshots, lineage."""

from __future__ import annotations

import math
import time
from typing import Any

from tests.api.conftest import Api, error_of

MLFLOW = "/mlflow/api/2.0/mlflow/"


def mlflow(api: Api, path: str, body: dict[str, Any], workspace: str = "default") -> dict[str, Any]:
    r = api.http.post(api.url(MLFLOW + path, workspace), json=body)
    assert r.status_code == 200, r.text
    return r.json()


def make_run(api: Api, exp_id: str, name: str, *, params=None, metrics=None, tags=None) -> str:
    run = mlflow(api, "runs/create", {"experiment_id": exp_id, "run_name": name})["run"]["info"]["run_id"]
    now = int(time.time() * 1000)
    body: dict[str, Any] = {"run_id": run}
    body["params"] = [{"key": k, "value": v} for k, v in (params or {}).items()]
    body["metrics"] = [{"key": k, "value": v, "timestamp": now, "step": 0} for k, v in (metrics or {}).items()]
    body["tags"] = [{"key": k, "value": v} for k, v in (tags or {}).items()]
    mlflow(api, "runs/log-batch", body)
    return run


def log_points(api: Api, run: str, key: str, values: list[tuple[int, float]], t0: int = 1_700_000_000_000) -> None:
    for start in range(0, len(values), 1000):
        chunk = values[start : start + 1000]
        metrics = [{"key": key, "value": v, "timestamp": t0 + s, "step": s} for s, v in chunk]
        mlflow(api, "runs/log-batch", {"run_id": run, "metrics": metrics})


def studio(api: Api, path: str, workspace: str = "default", **params: Any) -> Any:
    return api.http.get(api.url("/studio" + path, workspace), params=params)


def test_jobs_search_filters_sorts_and_pages(api):
    exp = mlflow(api, "experiments/create", {"name": "sweep-a"})["experiment_id"]
    other = mlflow(api, "experiments/create", {"name": "sweep-b"})["experiment_id"]
    names = []
    for i in range(12):
        names.append(
            make_run(
                api,
                exp,
                f"r{i}",
                params={"lr": "0.1" if i % 2 else "0.01", "depth": str(i)},
                metrics={"acc": i / 10, "loss": 1 - i / 20},
                tags={"team": "red" if i < 6 else "blue"},
            )
        )
    make_run(api, other, "elsewhere", params={"lr": "0.1"}, metrics={"acc": 0.99})

    body = studio(api, "/jobs", experiment="sweep-a").json()
    assert body["total"] == 12 and not body["total_is_lower_bound"]
    assert [j["name"] for j in body["jobs"]] == names[::-1]  # newest first
    row = body["jobs"][0]
    assert row["experiment_name"] == "sweep-a" and row["display_name"] == "r11" and row["tags"] == {"team": "blue"}
    assert row["metrics"] == {} and row["params"] == {}  # only the columns asked for

    # MLflow's filter expression, the chosen columns, a metric order.
    body = studio(
        api,
        "/jobs",
        experiment="sweep-a",
        filter="metrics.acc > 0.45 and params.lr = '0.1'",
        columns="metrics.acc,params.lr",
        order_by="metrics.acc ASC",
    ).json()
    assert [j["display_name"] for j in body["jobs"]] == ["r5", "r7", "r9", "r11"]
    assert body["jobs"][0]["metrics"] == {"acc": 0.5} and body["jobs"][0]["params"] == {"lr": "0.1"}

    # Tags, and the whole workspace when no experiment is named.
    body = studio(api, "/jobs", tag="team=red", order_by="name").json()
    assert body["total"] == 6
    assert studio(api, "/jobs", filter="metrics.acc > 0.95").json()["jobs"][0]["display_name"] == "elsewhere"

    # Keyset pages: no row twice, none left out; a job without the metric or param comes last.
    bare = make_run(api, exp, "bare")
    names.append(bare)
    for order in (
        "params.depth desc",
        "created_at",
        "metrics.loss",
        "metrics.acc desc",
        "name asc",
        "duration",
        "tags.team",
    ):
        seen, token = [], None
        while True:
            page = studio(
                api,
                "/jobs",
                experiment="sweep-a",
                order_by=order,
                max_results=5,
                **({"page_token": token} if token else {}),
            ).json()
            seen += [j["name"] for j in page["jobs"]]
            token = page["next_page_token"]
            if not token:
                break
        assert sorted(seen) == sorted(names) and len(seen) == 13, order
        if order.startswith(("metrics.", "params.", "tags.")):
            assert seen[-1] == bare, order
    page = studio(api, "/jobs", experiment="sweep-a", order_by="params.depth desc", max_results=3).json()
    assert [j["display_name"] for j in page["jobs"]] == ["r9", "r8", "r7"]  # strings: "9" > "8" > "11"
    assert page["total"] == 13
    # A filter expression is not counted past its first page (the count would read every job).
    page = studio(api, "/jobs", filter="metrics.acc > 0.05", max_results=3).json()
    assert len(page["jobs"]) == 3 and "total" not in page and page["next_page_token"]

    # Bad input names what was wrong.
    for params, words in (
        ({"filter": "metrics.acc >> 1"}, "filter"),
        ({"order_by": "colour"}, "colour"),
        ({"status": "Sleeping"}, "Sleeping"),
        ({"max_results": 0}, "max_results"),
        ({"page_token": "bm9wZQ"}, "page"),
        ({"columns": "acc"}, "columns"),
    ):
        r = studio(api, "/jobs", **params)
        assert r.status_code == 400, (params, r.text)
        assert words in error_of(r)["message"], error_of(r)

    cols = studio(api, "/jobs-columns", experiment="sweep-a").json()
    assert cols == {"metrics": ["acc", "loss"], "params": ["depth", "lr"], "tags": ["team"]}
    exps = {e["name"]: e for e in studio(api, "/experiments").json()["experiments"]}
    assert exps["sweep-a"]["job_count"] == 13 and exps["sweep-a"]["id"] == exp


def test_series_keeps_every_point_then_samples_min_and_max(api):
    exp = mlflow(api, "experiments/create", {"name": "curves"})["experiment_id"]
    run = make_run(api, exp, "long")
    # 5,000 points of a smooth curve with one spike at step 3,333 that sampling must not lose.
    values = [(s, 10.0 if s == 3333 else 1.0 / (1 + s)) for s in range(5000)]
    log_points(api, run, "loss", values)
    log_points(api, run, "short", [(s, float(s)) for s in range(10)])

    keys = studio(api, f"/jobs/{run}/metrics").json()["metrics"]
    assert {k["key"]: k["count"] for k in keys} == {"loss": 5000, "short": 10}

    whole = studio(api, f"/jobs/{run}/series", key="short").json()
    assert not whole["sampled"] and whole["step"] == list(range(10)) and whole["value"] == [float(s) for s in range(10)]
    assert whole["time"][0] == 1_700_000_000_000 and whole["step_range"] == [0, 9]

    sampled = studio(api, f"/jobs/{run}/series", key="loss", points=100).json()
    assert sampled["sampled"] and sampled["total"] == 5000 and len(sampled["step"]) <= 100
    assert max(sampled["max"]) == 10.0  # the spike survives
    assert min(sampled["min"]) == 1.0 / 5000
    assert sampled["step"] == sorted(sampled["step"])
    assert all(lo <= v <= hi for lo, v, hi in zip(sampled["min"], sampled["value"], sampled["max"], strict=True))

    # Zoom: a range of 50 steps comes back whole.
    zoom = studio(api, f"/jobs/{run}/series", key="loss", points=100, step_from=3300, step_to=3349).json()
    assert not zoom["sampled"] and zoom["step"] == list(range(3300, 3350)) and 10.0 in zoom["value"]

    # Compare: the same metric of several runs; unknown runs are left out.
    other = make_run(api, exp, "other")
    log_points(api, other, "loss", [(s, 2.0) for s in range(20)])
    both = studio(api, "/series", runs=f"{run},{other},nope", key="loss", points=50).json()["series"]
    assert [s["job"] for s in both] == [run, other] and both[1]["value"] == [2.0] * 20

    for params, words in (
        ({"points": 1}, "points"),
        ({"step_from": 5, "step_to": 1}, "step_from"),
        ({"step_to": 10**30}, "step_to"),
        ({}, "key"),
    ):
        r = studio(api, f"/jobs/{run}/series", **({"key": "loss"} if "key" not in words else {}), **params)
        assert r.status_code == 400 and words in error_of(r)["message"], r.text
    assert studio(api, "/jobs/nope/series", key="loss").status_code == 404


def test_series_of_a_metric_logged_at_one_step_cuts_time(api):
    """MLflow's default step is 0: such a metric is sampled along its timestamps."""
    exp = mlflow(api, "experiments/create", {"name": "stepless"})["experiment_id"]
    run = make_run(api, exp, "r")
    t0 = 1_700_000_000_000
    for start in range(0, 3000, 1000):
        metrics = [
            {"key": "acc", "value": math.sin(i / 100), "timestamp": t0 + 10 * i, "step": 0}
            for i in range(start, start + 1000)
        ]
        mlflow(api, "runs/log-batch", {"run_id": run, "metrics": metrics})
    body = studio(api, f"/jobs/{run}/series", key="acc", points=200).json()
    assert body["sampled"] and body["total"] == 3000
    assert 150 <= len(body["time"]) <= 200 and body["time"] == sorted(body["time"]) and set(body["step"]) == {0}
    assert max(body["max"]) == max(math.sin(i / 100) for i in range(3000))


def test_watch_answers_304_until_something_changes(api):
    exp = mlflow(api, "experiments/create", {"name": "live"})["experiment_id"]
    run = make_run(api, exp, "live", metrics={"loss": 1.0})
    r = studio(api, f"/jobs/{run}/watch")
    assert r.status_code == 200, r.text
    body, etag = r.json(), r.headers["etag"]
    assert body["status"] == "Running" and not body["terminal"] and body["metrics"]["loss"]["value"] == 1.0
    again = api.http.get(api.url(f"/studio/jobs/{run}/watch"), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    log_points(api, run, "loss", [(1, 0.5)])
    changed = api.http.get(api.url(f"/studio/jobs/{run}/watch"), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["metrics"]["loss"]["step"] == 1
    mlflow(api, "runs/update", {"run_id": run, "status": "FINISHED"})
    assert studio(api, f"/jobs/{run}/watch").json()["terminal"] is True
