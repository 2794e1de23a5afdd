"""What a job token may write (services/run_scope.py), on both databases: its own run, the runs
below it and the runs it created, their artifacts and logged models, its outputs; new runs,
experiments and registered models. Reads stay open. Everything else is 403 PERMISSION_DENIED
naming what was refused, and nothing is written."""

from __future__ import annotations

from typing import Any

from .conftest import error_of
from .test_jobs_api import bearer, start_attempt, submitted

ML = "/mlflow/api/2.0/mlflow"
ART = "/mlflow/api/2.0/mlflow-artifacts/artifacts"


def _ml(api, headers, method: str, path: str, body: dict[str, Any] | None = None):
    kwargs: dict[str, Any] = {"params": body} if method == "GET" else {"json": body or {}}
    return api.anon.request(method, api.url(ML + "/" + path), headers=headers, **kwargs)


def _denied(r, *names: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error_code"] == "PERMISSION_DENIED", body
    for name in names:
        assert name in body["message"], body


def _ok(r) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()


def _metric(run: str, value: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"run_id": run, "key": "m", "value": value, "timestamp": 1, "step": 0, **extra}


def _history(api, run: str) -> list[float]:
    body = _ok(_ml(api, api.http.headers, "GET", "metrics/get-history", {"run_id": run, "metric_key": "m"}))
    return [m["value"] for m in body.get("metrics", [])]


def test_job_token_writes_its_own_runs_only(api):
    a = submitted(api, name="scope-a")["name"]
    b = submitted(api, name="scope-b")["name"]
    tok = start_attempt(api, a)
    start_attempt(api, b)
    admin = dict(api.http.headers)

    # Its own run: yes. Another job's run: no, for every kind of run write, and nothing lands.
    _ok(_ml(api, tok, "POST", "runs/log-metric", _metric(a)))
    for path, body in (
        ("runs/log-metric", _metric(b, 2.0)),
        ("runs/log-batch", {"run_id": b, "metrics": [_metric(b, 3.0)]}),
        ("runs/log-parameter", {"run_id": b, "key": "p", "value": "x"}),
        ("runs/set-tag", {"run_id": b, "key": "t", "value": "x"}),
        ("runs/delete-tag", {"run_id": b, "key": "t"}),
        ("runs/update", {"run_id": b, "status": "FAILED"}),
        ("runs/delete", {"run_id": b}),
        ("runs/log-inputs", {"run_id": b, "datasets": []}),
        ("runs/log-model", {"run_id": b, "model_json": "{}"}),
    ):
        _denied(_ml(api, tok, "POST", path, body), f"run '{b}'", a)
    assert _history(api, b) == [] and _history(api, a) == [1.0]
    assert _ok(_ml(api, admin, "GET", "runs/get", {"run_id": b}))["run"]["info"]["lifecycle_stage"] == "active"
    # Reads stay open.
    assert _ok(_ml(api, tok, "GET", "runs/get", {"run_id": b}))["run"]["info"]["run_id"] == b
    _ok(_ml(api, tok, "POST", "runs/search", {"experiment_ids": ["0"]}))

    # Nested runs it creates (and theirs) are its own; a nested run under another job is not.
    def nested(parent: str) -> str:
        body = {"experiment_id": "0", "tags": [{"key": "mlflow.parentRunId", "value": parent}]}
        return _ok(_ml(api, tok, "POST", "runs/create", body))["run"]["info"]["run_id"]

    child = nested(a)
    grandchild = nested(child)
    for run in (child, grandchild):
        _ok(_ml(api, tok, "POST", "runs/log-metric", _metric(run, 4.0)))
        assert _history(api, run) == [4.0]
    body = {"experiment_id": "0", "tags": [{"key": "mlflow.parentRunId", "value": b}]}
    _denied(_ml(api, tok, "POST", "runs/create", body), f"run '{b}'")

    # A top-level run it creates is marked as its own (a forged mark is replaced) and writable.
    forged = {"experiment_id": "0", "tags": [{"key": "shoal.createdByJob", "value": b}]}
    own = _ok(_ml(api, tok, "POST", "runs/create", forged))["run"]
    assert {"key": "shoal.createdByJob", "value": a} in own["data"]["tags"]
    _ok(_ml(api, tok, "POST", "runs/log-metric", _metric(own["info"]["run_id"])))
    # A run the admin made is nobody's job's.
    other = _ok(_ml(api, admin, "POST", "runs/create", {"experiment_id": "0"}))["run"]["info"]["run_id"]
    _denied(_ml(api, tok, "POST", "runs/log-metric", _metric(other)), f"run '{other}'")
    # The other job's token is held to its own run the same way.
    tok_b = bearer(api.app.state.job_signer.issue("default", b, 1))
    _denied(_ml(api, tok_b, "POST", "runs/log-metric", _metric(child)), f"run '{child}'", b)
    _ok(_ml(api, tok_b, "POST", "runs/log-metric", _metric(b, 5.0)))


def test_job_token_experiments_models_and_registry(api):
    a = submitted(api, name="scope-c")["name"]
    b = submitted(api, name="scope-d")["name"]
    tok = start_attempt(api, a)
    start_attempt(api, b)
    admin = dict(api.http.headers)

    exp = _ok(_ml(api, tok, "POST", "experiments/create", {"name": "made-by-job"}))["experiment_id"]
    _denied(_ml(api, tok, "POST", "experiments/delete", {"experiment_id": exp}))
    _denied(_ml(api, tok, "POST", "experiments/update", {"experiment_id": "0", "new_name": "x"}))
    # Its own run's experiment (Default here) may be tagged; another may not.
    _ok(_ml(api, tok, "POST", "experiments/set-experiment-tag", {"experiment_id": "0", "key": "k", "value": "v"}))
    _denied(_ml(api, tok, "POST", "experiments/set-experiment-tag", {"experiment_id": exp, "key": "k", "value": "v"}))

    # Logged models follow their source run; one made without a run belongs to the job that made it.
    mine = _ok(_ml(api, tok, "POST", "logged-models", {"experiment_id": "0", "source_run_id": a}))["model"]
    loose = _ok(_ml(api, tok, "POST", "logged-models", {"experiment_id": "0"}))["model"]
    _denied(_ml(api, tok, "POST", "logged-models", {"experiment_id": "0", "source_run_id": b}), f"run '{b}'")
    theirs = _ok(_ml(api, admin, "POST", "logged-models", {"experiment_id": "0", "source_run_id": b}))["model"]
    for model in (mine, loose):
        mid = model["info"]["model_id"]
        _ok(_ml(api, tok, "PATCH", f"logged-models/{mid}", {"status": "LOGGED_MODEL_READY"}))
        _ok(_ml(api, tok, "POST", "runs/log-metric", _metric(a, model_id=mid)))
    tid = theirs["info"]["model_id"]
    _denied(_ml(api, tok, "PATCH", f"logged-models/{tid}", {"status": "LOGGED_MODEL_READY"}), tid)
    _denied(_ml(api, tok, "PATCH", f"logged-models/{tid}/tags", {"tags": [{"key": "x", "value": "y"}]}), tid)
    _denied(_ml(api, tok, "POST", "runs/log-metric", _metric(a, model_id=tid)), tid)
    _denied(_ml(api, tok, "POST", "runs/outputs", {"run_id": a, "models": [{"model_id": tid}]}), tid)

    # Registry: a job registers new models and versions of its own runs; changes need `write`.
    _ok(_ml(api, tok, "POST", "registered-models/create", {"name": "job-model"}))
    mid = mine["info"]["model_id"]
    _ok(_ml(api, tok, "POST", "model-versions/create", {"name": "job-model", "source": f"models:/{mid}"}))
    _denied(_ml(api, tok, "POST", "model-versions/create", {"name": "job-model", "source": f"models:/{tid}"}), tid)
    r = _ml(api, tok, "POST", "registered-models/alias", {"name": "job-model", "alias": "prod", "version": "1"})
    _denied(r, "write")
    r = _ml(api, tok, "DELETE", "registered-models/delete", {"name": "job-model"})
    _denied(r, "write")


def test_job_token_files(api):
    a = submitted(api, name="scope-e", outputs={"out": {"type": "uri_folder"}})["name"]
    b = submitted(api, name="scope-f")["name"]
    tok = start_attempt(api, a)
    start_attempt(api, b)
    child_body = {"experiment_id": "0", "tags": [{"key": "mlflow.parentRunId", "value": a}]}
    child = _ok(_ml(api, tok, "POST", "runs/create", child_body))["run"]["info"]["run_id"]

    def put(path: str):
        return api.anon.put(
            api.url(f"{ART}/{path}"), headers={**tok, "content-type": "application/octet-stream"}, content=b"x"
        )

    _ok(put(f"ExperimentRun/dcid.{a}/notes.txt"))
    _ok(put(f"ExperimentRun/dcid.{child}/notes.txt"))
    _denied(put(f"ExperimentRun/dcid.{b}/notes.txt"), f"run '{b}'")
    _denied(api.anon.delete(api.url(f"{ART}/ExperimentRun/dcid.{b}/x"), headers=tok), f"run '{b}'")
    _denied(put("experiments/0/whatever.txt"))
    listed = api.http.get(api.url(ART), params={"path": f"ExperimentRun/dcid.{b}"}).json()
    assert listed == {}

    def write(datastore: str, path: str):
        return api.anon.put(
            api.url(f"/datastores/{datastore}/content"),
            params={"path": path},
            headers={**tok, "content-type": "application/octet-stream"},
            content=b"y",
        )

    assert write("workspaceblobstore", f"azureml/{a}/out/part-0").status_code == 200
    assert write("workspaceartifactstore", f"ExperimentRun/dcid.{a}/outputs/a.txt").status_code == 200
    for datastore, path in (
        ("workspaceartifactstore", f"ExperimentRun/dcid.{b}/outputs/a.txt"),
        ("workspaceblobstore", f"azureml/{b}/out/part-0"),
        ("workspaceblobstore", "LocalUpload/elsewhere.txt"),
    ):
        r = write(datastore, path)
        assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED", (path, r.text)


def test_an_output_at_the_datastore_root_is_not_writable_and_the_refusal_says_why(api):
    root = {"out": {"type": "uri_folder", "path": "azureml://datastores/workspaceblobstore/paths/"}}
    job = submitted(api, name="scope-root", outputs=root)["name"]
    tok = start_attempt(api, job)
    r = api.anon.put(
        api.url("/datastores/workspaceblobstore/content"),
        params={"path": "my_output.parquet"},
        headers={**tok, "content-type": "application/octet-stream"},
        content=b"y",
    )
    assert r.status_code == 403
    assert "output 'out' is the datastore's root, which no job may write" in error_of(r)["message"]


def test_job_token_batch_writes_its_own_outputs_only(api):
    """``PUT …/contents`` (many small files in one request) follows the same rule as one file:
    checked once for the prefix, or for every file when there is none; nothing lands when refused."""
    from shoal.storage.batches import header

    a = submitted(api, name="scope-batch-a", outputs={"out": {"type": "uri_folder"}})["name"]
    b = submitted(api, name="scope-batch-b")["name"]
    tok = start_attempt(api, a)
    start_attempt(api, b)
    body = header("x.txt", 1) + b"x" + header("d/y.txt", 2) + b"yy"

    def write(prefix: str):
        return api.anon.put(
            api.url("/datastores/workspaceblobstore/contents"),
            params={"prefix": prefix},
            headers={**tok, "content-type": "application/octet-stream"},
            content=body,
        )

    r = write(f"azureml/{a}/out")
    assert r.status_code == 200, r.text
    assert [f["path"] for f in r.json()["value"]] == [f"azureml/{a}/out/x.txt", f"azureml/{a}/out/d/y.txt"]
    for prefix in (f"azureml/{b}/out", "LocalUpload", ""):
        r = write(prefix)
        assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED", (prefix, r.text)
    listed = api.http.get(api.url("/datastores/workspaceblobstore/files"), params={"path": ""}).json()["value"]
    assert sorted(f["path"] for f in listed) == [f"azureml/{a}/out/d/y.txt", f"azureml/{a}/out/x.txt"]
