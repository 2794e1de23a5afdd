"""Registering models, attacked: a job token registers versions only from its own run's artifacts,
logged models or outputs, and only into names its job created (services/access/job_token_scope.py),
on the MLflow registry and the Azure model routes; and an ``MLmodel`` (or conda file) alias bomb is
a 400 naming the file, parsed with the CLI's bounded loader, with nothing registered."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.envs.spec import EnvSpec
from shoal.errors import SpecError
from shoal.server.auth import JOB_PERMISSIONS, Permission, Principal

from .conftest import error_of
from .test_jobs_api import start_attempt, submitted

ML = "/mlflow/api/2.0/mlflow"
ART = "/mlflow/api/2.0/mlflow-artifacts/artifacts"
MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
# 383 bytes that expand ~10x per level: a "billion laughs" in YAML.
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "flavors: {python_function: {loader_module: x, bomb: *i}}\n"
)


def _ml(api, headers, path: str, body: dict[str, Any], method: str = "POST"):
    kwargs: dict[str, Any] = {"params": body} if method == "GET" else {"json": body}
    return api.anon.request(method, api.url(f"{ML}/{path}"), headers=headers, **kwargs)


def _denied(r, *words: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    message = body["message"] if "error_code" in body else body["error"]["message"]
    for word in words:
        assert word in message, (word, message)


def _put_file(api, rel: str, data: bytes) -> None:
    r = api.http.put(api.url(f"{ART}/{rel}"), content=data, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text


def _versions(api, name: str) -> list[str]:
    r = _ml(api, api.http.headers, "model-versions/search", {"filter": f"name='{name}'"}, "GET")
    return sorted(v["version"] for v in r.json().get("model_versions", []))


def test_a_job_registers_only_its_own_files_into_its_own_names(api):
    a = submitted(api, name="reg-a", outputs={"out": {"type": "uri_folder"}})["name"]
    b = submitted(api, name="reg-b", outputs={"out": {"type": "uri_folder"}})["name"]
    tok_a, tok_b = start_attempt(api, a), start_attempt(api, b)
    admin = dict(api.http.headers)
    for run in (a, b):
        _put_file(api, f"ExperimentRun/dcid.{run}/model/MLmodel", MLMODEL)

    # Someone's model: the admin registered it. A job cannot add a version, so `latest` stays.
    assert _ml(api, admin, "registered-models/create", {"name": "shared"}).status_code == 200
    assert _ml(api, admin, "model-versions/create", {"name": "shared", "source": f"runs:/{b}/model"}).status_code == 200
    r = _ml(api, tok_a, "model-versions/create", {"name": "shared", "source": f"runs:/{a}/model"})
    _denied(r, "model 'shared' was not created by job")
    assert _versions(api, "shared") == ["1"]

    # Its own name: from its own run's artifacts, yes; from anything else, no.
    assert _ml(api, tok_a, "registered-models/create", {"name": "mine"}).status_code == 200
    blob_b = f"azureml://datastores/workspaceblobstore/paths/azureml/{b}/out"
    for body in (
        {"source": "https://attacker.example/model"},
        {"source": "https://attacker.example/model", "run_id": a},
        {"source": f"runs:/{b}/model"},
        {"source": blob_b},
        {"source": f"azureml://jobs/{b}/outputs/out"},
        {"source": "models:/shared/1"},
        {"source": "s3://bucket/model"},
    ):
        r = _ml(api, tok_a, "model-versions/create", {"name": "mine", **body})
        _denied(r, "its own runs' artifacts")
    assert _versions(api, "mine") == []
    for body in (
        {"source": f"runs:/{a}/model"},
        {"source": f"mlflow-artifacts:/ExperimentRun/dcid.{a}/model", "run_id": a},
        {"source": f"azureml://datastores/workspaceblobstore/paths/azureml/{a}/out"},
    ):
        r = _ml(api, tok_a, "model-versions/create", {"name": "mine", **body})
        assert r.status_code == 200, (body, r.text)
        assert {"key": "shoal.createdByJob", "value": a} in r.json()["model_version"]["tags"]
    # A forged creator mark is replaced by the job's own.
    forged = {"name": "forged", "tags": [{"key": "shoal.createdByJob", "value": b}]}
    assert _ml(api, tok_a, "registered-models/create", forged).status_code == 200
    _denied(_ml(api, tok_b, "model-versions/create", {"name": "forged", "source": f"runs:/{b}/model"}), "forged")
    # The other job cannot add to it; the admin can.
    _denied(_ml(api, tok_b, "model-versions/create", {"name": "mine", "source": f"runs:/{b}/model"}), "mine")
    assert _ml(api, admin, "model-versions/create", {"name": "mine", "source": f"runs:/{b}/model"}).status_code == 200
    assert _versions(api, "mine") == ["1", "2", "3", "4"]

    # The Azure model routes: a job token lacks `write`, so it is refused outright ...
    body = {"path": f"azureml://jobs/{a}/outputs/out", "type": "custom_model"}
    r = api.anon.put(api.url("/models/az/versions/1"), json=body, headers=tok_a)
    assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED"
    # ... and even with a wider role it is held to the same rule as the MLflow routes.
    wide = Principal(f"job:default/{a}", JOB_PERMISSIONS | {Permission.WRITE}, "default", a, 1)
    api.app.state.tokens.add("wide-job-token", wide)
    wide_h = {"Authorization": "Bearer wide-job-token"}
    r = api.anon.put(api.url("/models/az/versions/1"), json={**body, "path": blob_b}, headers=wide_h)
    _denied(r, "its own runs' artifacts")
    r = api.anon.put(api.url("/models/shared/versions/9"), json=body, headers=wide_h)
    _denied(r, "model 'shared' was not created by job")
    r = api.anon.put(api.url("/models/az/versions/1"), json=body, headers=wide_h)
    assert r.status_code == 200, r.text
    assert r.json()["tags"]["shoal.createdByJob"] == a
    r = api.anon.put(api.url("/data/d/versions/1"), json={"type": "uri_folder", "path": blob_b}, headers=wide_h)
    assert r.status_code == 403


def test_an_mlmodel_alias_bomb_is_400_naming_the_file(sqlite_api):
    api = sqlite_api
    assert len(BOMB) < 600
    job = submitted(api, name="bomber")["name"]
    tok = start_attempt(api, job)
    _put_file(api, f"ExperimentRun/dcid.{job}/model/MLmodel", BOMB.encode())

    # The job's own run, through the MLflow registry (as the issue reproduced it) ...
    assert _ml(api, tok, "registered-models/create", {"name": "boom"}).status_code == 200
    r = _ml(api, tok, "model-versions/create", {"name": "boom", "source": f"runs:/{job}/model"})
    assert r.status_code == 400, r.text
    assert "MLmodel" in r.json()["message"] and "huge document" in r.json()["message"], r.text
    assert _versions(api, "boom") == []
    # ... and the admin through the Azure routes.
    path = f"azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{job}/model"
    r = api.http.put(api.url("/models/boom2/versions/1"), json={"type": "mlflow_model", "path": path})
    assert r.status_code == 400, r.text
    assert "MLmodel" in error_of(r)["message"] and "huge document" in error_of(r)["message"]
    assert api.http.get(api.url("/models/boom2/versions/1")).status_code == 404
    # Tags outside plain YAML (``!!python/object/apply``) are refused the same way.
    _put_file(api, f"ExperimentRun/dcid.{job}/evil/MLmodel", b"flavors: !!python/object/apply:os.system [id]\n")
    path = f"azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{job}/evil"
    r = api.http.put(api.url("/models/evil/versions/1"), json={"type": "mlflow_model", "path": path})
    assert r.status_code == 400 and "not allowed" in error_of(r)["message"], r.text

    # A conda file kept as text is parsed (where an environment is built) with the same loader.
    env = {"name": "bomb-env", "image": "python:3.11-slim", "conda_file": "dependencies: [python=3.11]\n" + BOMB}
    with pytest.raises(SpecError, match="conda_file.*huge document"):
        EnvSpec.from_body(env)
