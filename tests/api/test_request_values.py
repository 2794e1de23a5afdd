"""Values that used to reach the database or Python's recursion and come back as 500s are 400s
naming what was wrong, on SQLite and PostgreSQL (server/request_checks.py): NUL in names, tags,
params and filters; integers beyond 64 bits for step and timestamp; JSON nested 100,000 deep.
Also MLflow's key rules (no ``../x``), a client's experiment ``artifact_location`` ignored, and a
job token's ``mlflow.parentRunId`` only to a run it may write. Nothing is stored by a refusal."""

from __future__ import annotations

from typing import Any

from .test_jobs_api import start_attempt, submitted

ML = "/mlflow/api/2.0/mlflow"
NUL = "a\x00b"
BIG = 2**63


def _ml(api, path: str, body: dict[str, Any], method: str = "POST", headers: dict[str, str] | None = None):
    kwargs: dict[str, Any] = {"params": body} if method == "GET" else {"json": body}
    return api.anon.request(method, api.url(f"{ML}/{path}"), headers=headers or api.http.headers, **kwargs)


def _refused(r, *words: str, status: int = 400) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    message = body["message"] if "error_code" in body else body["error"]["message"]
    for word in words:
        assert word in message, (word, message)


def _run(api) -> str:
    r = _ml(api, "runs/create", {"experiment_id": "0"})
    assert r.status_code == 200, r.text
    return r.json()["run"]["info"]["run_id"]


def test_nul_bytes_and_64_bit_overflow_are_400_and_store_nothing(api):
    run = _run(api)
    metric = {"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    for path, body, method, words in (
        ("experiments/create", {"name": NUL}, "POST", ("body.name", "NUL")),
        ("experiments/get-by-name", {"experiment_name": NUL}, "GET", ("experiment_name", "NUL")),
        ("runs/set-tag", {"run_id": run, "key": "k", "value": NUL}, "POST", ("body.value", "NUL")),
        ("runs/set-tag", {"run_id": run, "key": NUL, "value": "v"}, "POST", ("body.key", "NUL")),
        ("runs/log-parameter", {"run_id": run, "key": "p", "value": NUL}, "POST", ("NUL",)),
        ("runs/log-batch", {"run_id": run, "params": [{"key": "p", "value": NUL}]}, "POST", ("params[0].value",)),
        ("runs/search", {"experiment_ids": ["0"], "filter": f"tags.t = '{NUL}'"}, "POST", ("body.filter",)),
        ("registered-models/create", {"name": "rm", "tags": [{"key": "k", "value": NUL}]}, "POST", ("NUL",)),
        ("runs/log-metric", {**metric, "step": BIG}, "POST", ("body.step", "64-bit")),
        ("runs/log-metric", {**metric, "timestamp": 2**64 + 1}, "POST", ("timestamp",)),
        ("runs/log-metric", {**metric, "timestamp": str(BIG)}, "POST", ("timestamp", "2^63")),
        ("runs/log-batch", {"run_id": run, "metrics": [{**metric, "step": str(-BIG - 1)}]}, "POST", ("step",)),
        ("metrics/get-history", {"run_id": run, "metric_key": "m", "max_results": str(BIG)}, "GET", ("max_results",)),
    ):
        r = _ml(api, path, body, method)
        _refused(r, *words)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text

    # Nothing of it was stored.
    got = _ml(api, "runs/get", {"run_id": run}, "GET").json()["run"]
    assert got["data"].get("params", []) == [] and all(t["key"].startswith("mlflow.") for t in got["data"]["tags"])
    assert _ml(api, "metrics/get-history", {"run_id": run, "metric_key": "m"}, "GET").json().get("metrics", []) == []
    names = [e["name"] for e in _ml(api, "experiments/search", {"max_results": 100}).json()["experiments"]]
    assert names == ["Default"]
    assert _ml(api, "registered-models/get", {"name": "rm"}, "GET").status_code == 404

    # The Azure routes: bodies, path and query parameters.
    r = api.http.put(
        api.url("/data/d/versions/1"), json={"type": "uri_file", "path": "https://e.com/a", "tags": {"t": NUL}}
    )
    _refused(r, "body.tags.t", "NUL")
    assert api.http.get(api.url("/data/d/versions/1")).status_code == 404
    _refused(api.http.get(api.url("/data"), params={"name": NUL}), "query parameter 'name'")
    _refused(api.http.get(api.url("/models/a%00b/versions/1")), "path parameter 'name'")
    _refused(api.http.put(api.url("/models/m/versions/1"), json={"path": "https://e.com/m", "stage": BIG}), "64-bit")
    assert api.http.get(api.url("/models"), params={"name": "m"}).status_code == 404


def test_json_nested_100000_deep_is_400(sqlite_api):
    api = sqlite_api
    depth = 100_000
    headers = {**api.http.headers, "content-type": "application/json"}
    for deep in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        for path in ("experiments/create", "runs/search"):
            r = api.anon.post(api.url(f"{ML}/{path}"), content=deep, headers=headers)
            _refused(r, "nested too deeply")
        r = api.anon.put(api.url("/data/d/versions/1"), content=deep, headers=headers)
        _refused(r, "nested too deeply")
    # Moderately nested but under orjson's limit, beyond ours: refused by the walk, not the parser.
    body = {"name": "e", "tags": [{"key": "k", "value": "v", "x": [[[[[[[[[[]]]]]]]]]]}]}
    for _ in range(300):
        body = {"n": body}
    _refused(api.http.post(api.url(f"{ML}/experiments/create"), json=body), "nested more than")


def test_metric_param_and_tag_keys_follow_mlflow(sqlite_api):
    api = sqlite_api
    run = _run(api)
    for key in ("../x", "a/../../b", "/etc/passwd", ".", "a//b", "./a", "a\\b"):
        for path, body in (
            ("runs/log-metric", {"run_id": run, "key": key, "value": 1.0, "timestamp": 1, "step": 0}),
            ("runs/log-parameter", {"run_id": run, "key": key, "value": "v"}),
            ("runs/set-tag", {"run_id": run, "key": key, "value": "v"}),
            ("runs/log-batch", {"run_id": run, "metrics": [{"key": key, "value": 1.0, "timestamp": 1, "step": 0}]}),
        ):
            r = _ml(api, path, body)
            _refused(r, "Invalid")
    for key in ("a/b", "loss val", "x.y-z_1", "a:b"):
        r = _ml(api, "runs/log-metric", {"run_id": run, "key": key, "value": 1.0, "timestamp": 1, "step": 0})
        assert r.status_code == 200, (key, r.text)
    got = _ml(api, "runs/get", {"run_id": run}, "GET").json()["run"]["data"]
    assert sorted(m["key"] for m in got["metrics"]) == ["a/b", "a:b", "loss val", "x.y-z_1"]
    assert got.get("params", []) == []


def test_a_client_chosen_artifact_location_is_ignored(sqlite_api):
    api = sqlite_api
    for i, location in enumerate(("file:///etc/", "http:///#/../../../../etc/", "dbfs:/")):
        r = _ml(api, "experiments/create", {"name": f"e{i}", "artifact_location": location})
        assert r.status_code == 200, r.text
        exp = r.json()["experiment_id"]
        shown = _ml(api, "experiments/get", {"experiment_id": exp}, "GET").json()["experiment"]
        assert shown["artifact_location"] == f"mlflow-artifacts:/experiments/{exp}"
        run = _ml(api, "runs/create", {"experiment_id": exp}).json()["run"]["info"]
        assert run["artifact_uri"].startswith("mlflow-artifacts:/"), run
        assert location not in r.text + str(shown) + str(run)


def test_a_job_sets_parent_run_only_to_runs_it_may_write(sqlite_api):
    api = sqlite_api
    a = submitted(api, name="parent-a")["name"]
    b = submitted(api, name="parent-b")["name"]
    tok = start_attempt(api, a)
    start_attempt(api, b)
    child = _ml(api, "runs/create", {"experiment_id": "0"}, headers=tok).json()["run"]["info"]["run_id"]
    parent = "mlflow.parentRunId"
    for path, body in (
        ("runs/create", {"experiment_id": "0", "tags": [{"key": parent, "value": b}]}),
        ("runs/set-tag", {"run_id": child, "key": parent, "value": b}),
        ("runs/log-batch", {"run_id": child, "tags": [{"key": parent, "value": b}]}),
        ("runs/set-tag", {"run_id": child, "key": parent, "value": "no-such-run"}),
    ):
        r = _ml(api, path, body, headers=tok)
        _refused(r, parent, status=403)
        assert r.json()["error_code"] == "PERMISSION_DENIED"
    tags = _ml(api, "runs/get", {"run_id": child}, "GET").json()["run"]["data"]["tags"]
    assert parent not in {t["key"] for t in tags}
    # Under its own run: yes.
    assert _ml(api, "runs/set-tag", {"run_id": child, "key": parent, "value": a}, headers=tok).status_code == 200
    assert (
        _ml(api, "runs/log-batch", {"run_id": child, "tags": [{"key": parent, "value": a}]}, headers=tok).status_code
        == 200
    )
