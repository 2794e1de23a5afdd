"""Command jobs over the REST API and the SDK, on both databases, with no dispatcher running.

Jobs stay where the API puts them (Queued), so these tests drive the runner side by hand: they
move a job to Preparing with a new attempt, mint that attempt's job token with the app's signer
and call the runner routes with it, as ``python -m shoal.runtime`` would. A few tests run the
dispatcher's ``tick`` against a fake backend that starts nothing.
"""

from __future__ import annotations

import re
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shoal import Input, Output, command
from shoal.compute import AttemptKey, Capabilities, RunnerAttempt
from shoal.errors import InvalidStateError
from shoal.runtime.materialize import parse_datastore_uri
from shoal.services.jobs import state as job_service
from shoal.services.jobs.dispatcher import Dispatcher
from shoal.services.workspaces import workspace_id

from .conftest import error_of

ENV = {"image": "python:3.11"}
JOB_NAME_RE = re.compile(r"^[a-z]+_[a-z]+_[b-df-hj-np-tv-z0-9]{10}$")
BLOB = "azureml://datastores/workspaceblobstore/paths"


# -- helpers ---------------------------------------------------------------------------------


def submit(api, **body: Any):
    return api.http.post(api.url("/jobs"), json={"command": "echo hi", "environment": ENV, **body})


def submitted(api, **body: Any) -> dict[str, Any]:
    r = submit(api, **body)
    assert r.status_code == 200, r.text
    return r.json()


def job(api, name: str) -> dict[str, Any]:
    r = api.http.get(api.url(f"/jobs/{name}"))
    assert r.status_code == 200, r.text
    return r.json()


def all_job_names(api) -> list[str]:
    r = api.http.get(api.url("/jobs"), params={"list_view_type": "All"})
    assert r.status_code == 200, r.text
    return [j["name"] for j in r.json()["value"]]


def resolved(api, name: str) -> dict[str, Any]:
    """The run spec an attempt-0 runner would get: the stored resolution of the job."""
    r = api.http.get(api.url(f"/jobs/{name}/runspec"), params={"attempt": 0})
    assert r.status_code == 200, r.text
    return r.json()


def row_of(api, name: str) -> dict[str, Any]:
    with api.app.state.ctx.db.read() as session:
        row = job_service.get_row(session, workspace_id(session, "default"), name)
        return {
            "status": row.status,
            "attempt": row.attempt,
            "heartbeat_at": row.heartbeat_at,
            "status_times": dict(row.status_times or {}),
            "runner_pid": row.runner_handle,
        }


def start_attempt(api, name: str, attempt: int = 1, workspace: str = "default") -> dict[str, str]:
    """What the dispatcher does when it claims a job: a new attempt, Preparing; returns auth headers."""
    with api.app.state.ctx.db.write() as session:
        row = job_service.get_row(session, workspace_id(session, workspace), name)
        row.attempt = attempt
        row.heartbeat_at = job_service.now()
        job_service.transition(row, "Preparing")
    return bearer(api.app.state.job_signer.issue(workspace, name, attempt))


def set_attempt(api, name: str, attempt: int) -> None:
    with api.app.state.ctx.db.write() as session:
        job_service.get_row(session, workspace_id(session, "default"), name).attempt = attempt


def force_status(api, name: str, status: str) -> None:
    with api.app.state.ctx.db.write() as session:
        job_service.transition(job_service.get_row(session, workspace_id(session, "default"), name), status)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def report(api, name: str, headers: dict[str, str], status: str, **extra: Any):
    return api.anon.post(api.url(f"/jobs/{name}/status"), headers=headers, json={"status": status, **extra})


def append(api, name: str, headers: dict[str, str], offset: int, data: bytes, path: str = "user_logs/std_log.txt"):
    return api.anon.post(
        api.url(f"/jobs/{name}/logs"),
        headers={**headers, "content-type": "application/octet-stream"},
        params={"path": path, "offset": offset},
        content=data,
    )


def read_log(api, name: str, offset: int = 0, path: str = "user_logs/std_log.txt", **params: Any):
    return api.http.get(api.url(f"/jobs/{name}/logs"), params={"path": path, "offset": offset, **params})


def put_data(api, name: str, version: str, path: str) -> None:
    r = api.http.put(api.url(f"/data/{name}/versions/{version}"), json={"type": "uri_folder", "path": path})
    assert r.status_code == 200, r.text


def data_versions(api, name: str) -> list[str]:
    r = api.http.get(api.url("/data"), params={"name": name, "list_view_type": "All"})
    return [] if r.status_code == 404 else sorted(v["version"] for v in r.json()["value"])


# -- submission ------------------------------------------------------------------------------


def test_rest_submit_queues_the_job_with_azure_defaults(api):
    body = submitted(
        api,
        command="python train.py --lr ${{inputs.lr}} --out ${{outputs.model}}",
        inputs={"lr": 0.5},
        outputs={"model": {"type": "uri_folder"}, "single": {"type": "uri_file"}},
    )
    name = body["name"]
    assert JOB_NAME_RE.fullmatch(name), name
    assert body["status"] == "Queued"
    assert body["type"] == "command" and body["compute"] == "local"
    assert body["display_name"] == name
    assert body["experiment_name"] == "Default"
    assert body["outputs"]["model"] == {
        "type": "uri_folder",
        "mode": "rw_mount",
        "path": f"{BLOB}/azureml/{name}/model/",
    }
    assert body["outputs"]["single"]["path"] == f"{BLOB}/azureml/{name}/single"
    props = body["properties"]
    assert set(props) == {"shoal.status_time.NotStarted", "shoal.status_time.Queued"}
    assert props["shoal.status_time.NotStarted"] <= props["shoal.status_time.Queued"]
    assert "start_time" not in body and "end_time" not in body
    assert body["services"]["Studio"]["endpoint"].endswith(f"/studio/workspaces/default/jobs/{name}")

    got = job(api, name)
    assert {k: got[k] for k in ("status", "display_name", "experiment_name", "outputs")} == {
        k: body[k] for k in ("status", "display_name", "experiment_name", "outputs")
    }
    assert all_job_names(api) == [name]
    spec = resolved(api, name)
    assert spec["status"] == "Queued" and spec["attempt"] == 0
    assert spec["artifacts"] == {"datastore": "workspaceartifactstore", "path": f"ExperimentRun/dcid.{name}"}
    assert spec["environment"] == {"inline": {"image": "python:3.11", "os_type": "linux"}}


def test_rest_submit_keeps_what_the_body_says(api):
    body = submitted(
        api,
        name="my-job-1",
        display_name="shown",
        experiment_name="exp",
        status="Completed",  # read-only: ignored
        outputs={
            "o": {"path": "azureml://datastores/workspaceblobstore/paths/x/${{name}}/${{output_name}}/"},
            "d": {"path": "azureml://datastores/${{default_datastore}}/paths/${{name}}", "mode": "upload"},
        },
    )
    assert body["name"] == "my-job-1" and body["display_name"] == "shown" and body["experiment_name"] == "exp"
    assert body["status"] == "Queued"
    assert body["outputs"]["o"]["path"] == f"{BLOB}/x/my-job-1/o/"
    assert body["outputs"]["d"] == {"type": "uri_folder", "mode": "upload", "path": f"{BLOB}/my-job-1"}
    r = submit(api, outputs={"o": {"path": "azureml://datastores/workspaceblobstore/paths/${{job}}/"}})
    assert r.status_code == 422 and "${{job}}" in error_of(r)["message"]


def test_sdk_submit(api, tmp_path, monkeypatch):
    folder = tmp_path / "my_experiment_folder"
    folder.mkdir()
    monkeypatch.chdir(folder)
    made = api.ml.jobs.create_or_update(
        command(
            command="python -c 'print(${{inputs.n}})' > ${{outputs.out}}/n.txt",
            environment=ENV,
            inputs={"n": 3, "data": Input(type="uri_folder", path=f"{BLOB}/data/", mode="download")},
            outputs={"out": Output(type="uri_folder", path=f"{BLOB}/runs/${{{{name}}}}/${{{{output_name}}}}")},
        )
    )
    assert made.status == "Queued"
    assert JOB_NAME_RE.fullmatch(made.name), made.name
    assert made.display_name == made.name
    assert made.experiment_name == "my_experiment_folder"
    out = made.outputs["out"]
    path = out["path"] if isinstance(out, dict) else out.path
    assert path == f"{BLOB}/runs/{made.name}/out"
    assert any(k.startswith("shoal.status_time.Queued") for k in made.properties)

    spec = resolved(api, made.name)["inputs"]
    assert spec["n"] == {"type": "integer", "value": 3}
    assert spec["data"] == {"type": "uri_folder", "mode": "download", "uri": f"{BLOB}/data/"}

    again = api.ml.jobs.get(made.name)
    assert again.status == "Queued" and again.experiment_name == "my_experiment_folder"
    named = api.ml.jobs.create_or_update(
        command(name="sdk-named", command="echo hi", environment=ENV, display_name="d", experiment_name="given")
    )
    assert (named.name, named.display_name, named.experiment_name) == ("sdk-named", "d", "given")
    assert [j.name for j in api.ml.jobs.list()] == ["sdk-named", made.name]


def test_bad_jobs_are_refused_and_leave_nothing(api):
    api.http.put(api.url("/computes/vm"), json={"type": "virtualmachine", "resource_id": "/subscriptions/x/vm"})
    # A compute instance is created Stopped.
    assert api.http.put(api.url("/computes/box"), json={"type": "computeinstance"}).json()["state"] == "Stopped"
    assert api.http.get(api.url("/computes/vm")).status_code == 200
    existing = submitted(api, name="taken")["name"]
    before = all_job_names(api)

    data_in = {"type": "uri_folder", "path": "azureml://datastores/nosuchstore/paths/a/"}
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"command": "echo ${{inputs.x}}"}, 422, "INVALID_SPEC", "'x'"),
        ({"command": "echo ${{outputs.y}}"}, 422, "INVALID_SPEC", "'y'"),
        ({"command": "ls ${{inputs.d}}", "inputs": {"d": {"type": "uri_folder"}}}, 422, "INVALID_SPEC", "'d'"),
        ({"compute": "azureml:no-such-cluster"}, 404, "NOT_FOUND", "no-such-cluster"),
        ({"compute": "vm"}, 400, "UNSUPPORTED", "virtualmachine"),
        ({"compute": "box"}, 409, "INVALID_STATE", "stopped"),
        ({"environment": "azureml:no-such-env:1"}, 404, "NOT_FOUND", "no-such-env"),
        ({"environment": None}, 422, "INVALID_SPEC", "environment"),
        ({"inputs": {"d": {"type": "uri_folder", "path": "azureml:nosuch:1"}}}, 404, "NOT_FOUND", "nosuch"),
        ({"inputs": {"d": data_in}}, 404, "NOT_FOUND", "nosuchstore"),
        ({"inputs": {"d": {"type": "uri_file", "path": "./data.csv"}}}, 400, "BAD_REQUEST", "must be uploaded"),
        ({"code": "./src"}, 400, "BAD_REQUEST", "must be uploaded"),
        ({"code": "azureml:no-such-code:1"}, 404, "NOT_FOUND", "no-such-code"),
        ({"outputs": {"o": {"path": "azureml://datastores/nosuchstore/paths/o/"}}}, 404, "NOT_FOUND", "nosuchstore"),
        ({"outputs": {"o": {"path": "https://example.com/o/"}}}, 422, "INVALID_SPEC", "datastore URI"),
        (
            {"inputs": {"d": {"type": "uri_folder", "path": "azureml://jobs/nojob/outputs/o"}}},
            404,
            "NOT_FOUND",
            "nojob",
        ),
        ({"inputs": {"d": {"path": f"azureml://jobs/{existing}/outputs/o"}}}, 404, "NOT_FOUND", "'o'"),
        ({"name": existing}, 409, "CONFLICT", existing),
        ({"name": "bad name!"}, 422, "INVALID_SPEC", "name"),
        ({"type": "pipeline", "jobs": {}}, 422, "INVALID_SPEC", "environment"),
        ({"type": "sweep"}, 422, "INVALID_SPEC", "trial"),
        (
            {
                "inputs": {
                    "d": {"path": "azureml://datastores/workspaceblobstore/paths/x/", "path_on_compute": "../../.ssh"}
                }
            },
            422,
            "INVALID_SPEC",
            "path_on_compute",
        ),
    ]
    for extra, status, code, word in cases:
        r = submit(api, **extra)
        assert r.status_code == status, (extra, r.text)
        err = error_of(r)
        assert err["code"] == code and word in err["message"], (extra, err)
    assert all_job_names(api) == before
    # An optional input inside $[[ ]] may stay unset.
    ok = submit(api, command="ls $[[--d ${{inputs.d}}]]", inputs={"d": {"type": "uri_folder"}})
    assert ok.status_code == 200, ok.text


def test_environment_variables_are_checked_like_the_command(api):
    r = submit(api, environment_variables={"X": "${{inputs.nope}}"})
    assert r.status_code == 422 and "nope" in error_of(r)["message"]
    assert all_job_names(api) == []


def test_inputs_resolve_to_paths_and_literals(api):
    put_data(api, "d", "1", f"{BLOB}/data/one/")
    put_data(api, "d", "2", f"{BLOB}/data/two/")
    source = submitted(api, name="source-job", outputs={"model": {}})
    inputs = {
        "pinned": {"type": "uri_folder", "path": "azureml:d:1"},
        "latest": {"type": "uri_folder", "path": "azureml:d@latest", "mode": "download"},
        "direct": {"type": "uri_folder", "path": f"{BLOB}/raw/", "mode": "direct"},
        "url": {"type": "uri_file", "path": "https://example.com/data.csv"},
        "upstream": {"type": "uri_folder", "path": "azureml://jobs/source-job/outputs/model/paths/sub"},
        "s": "text",
        "i": 3,
        "f": 0.25,
        "b": True,
        "typed": {"type": "integer", "default": 7},
        "unset": {"type": "string", "optional": True},
    }
    body = submitted(api, command="echo $[[${{inputs.unset}}]]", inputs=inputs)
    spec = resolved(api, body["name"])["inputs"]
    assert spec["pinned"] == {
        "type": "uri_folder",
        "mode": "ro_mount",
        "uri": f"{BLOB}/data/one/",
        "source": "azureml:d:1",
    }
    assert spec["latest"] == {
        "type": "uri_folder",
        "mode": "download",
        "uri": f"{BLOB}/data/two/",
        "source": "azureml:d@latest",
    }
    assert spec["direct"] == {"type": "uri_folder", "mode": "direct", "uri": f"{BLOB}/raw/"}
    assert spec["url"] == {"type": "uri_file", "mode": "ro_mount", "uri": "https://example.com/data.csv"}
    assert spec["upstream"]["uri"] == source["outputs"]["model"]["path"] + "sub"
    assert spec["s"] == {"type": "string", "value": "text"}
    assert spec["i"] == {"type": "integer", "value": 3}
    assert spec["f"] == {"type": "number", "value": 0.25}
    assert spec["b"] == {"type": "boolean", "value": True}
    assert spec["typed"] == {"type": "integer", "value": 7}
    assert spec["unset"] == {"type": "string", "value": None}
    # A later version does not change what the queued job resolved.
    put_data(api, "d", "3", f"{BLOB}/data/three/")
    assert resolved(api, body["name"])["inputs"]["latest"]["uri"] == f"{BLOB}/data/two/"


def test_environment_code_and_artifact_references_resolve(api):
    for version, image in (("1", "python:3.10"), ("2", "python:3.11")):
        r = api.http.put(api.url(f"/environments/env/versions/{version}"), json={"image": image})
        assert r.status_code == 200, r.text
    r = api.http.put(
        api.url("/datastores/workspaceblobstore/content"),
        params={"path": "LocalUpload/abc/src/train.py"},
        content=b"print(1)\n",
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code in (200, 201), r.text
    r = api.http.put(api.url("/codes/src/versions/1"), json={"path": f"{BLOB}/LocalUpload/abc/src"})
    assert r.status_code == 200, r.text

    pinned = resolved(api, submitted(api, environment="azureml:env:1", code="azureml:src:1")["name"])
    assert pinned["environment"]["asset"] == "env:1" and pinned["environment"]["spec"]["image"] == "python:3.10"
    assert pinned["code"] == {"uri": f"{BLOB}/LocalUpload/abc/src", "asset": "src:1"}
    latest = resolved(api, submitted(api, environment="azureml:env@latest", code=f"{BLOB}/code/")["name"])
    assert latest["environment"]["asset"] == "env:2" and latest["code"] == {"uri": f"{BLOB}/code/"}
    curated = resolved(
        api, submitted(api, environment="azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest")["name"]
    )
    assert curated["environment"] == {"curated": "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"}

    submitted(api, name="upstream")
    art = "azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.upstream"
    inputs = {
        "run_files": {"type": "uri_folder", "path": "runs:/upstream/outputs/x"},
        "artifacts": {"type": "uri_folder", "path": "azureml://jobs/upstream/outputs/artifacts/paths/logs"},
    }
    spec = resolved(api, submitted(api, inputs=inputs)["name"])["inputs"]
    assert spec["run_files"]["uri"] == f"{art}/outputs/x"
    assert spec["artifacts"]["uri"] == f"{art}/logs"
    assert spec["run_files"]["source"] == "runs:/upstream/outputs/x"


def test_long_form_datastore_uris_are_stored_in_the_form_the_runner_reads(api):
    long = (
        "azureml://subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/shoal"
        "/workspaces/default/datastores/workspaceblobstore/paths/x/"
    )
    body = submitted(api, inputs={"d": {"type": "uri_folder", "path": long}}, outputs={"o": {"path": long}})
    spec = resolved(api, body["name"])
    assert parse_datastore_uri(spec["inputs"]["d"]["uri"]) == ("workspaceblobstore", "x/")
    assert parse_datastore_uri(spec["outputs"]["o"]["path"]) == ("workspaceblobstore", "x/")


# -- list, update, archive, cancel -------------------------------------------------------------


def test_list_is_newest_first_and_pages(api):
    names = [submitted(api, name=f"job-{i:02d}")["name"] for i in range(25)]
    pages, token = [], None
    while True:
        params = {"max_results": 10, **({"page_token": token} if token else {})}
        r = api.http.get(api.url("/jobs"), params=params)
        assert r.status_code == 200, r.text
        pages.append([j["name"] for j in r.json()["value"]])
        token = r.json()["next_page_token"]
        if not token:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [n for p in pages for n in p] == names[::-1]
    assert [j.name for j in api.ml.jobs.list(max_results=3)] == names[::-1][:3]
    r = api.http.get(api.url("/jobs"), params={"page_token": "not-a-token!"})
    assert r.status_code == 400
    r = api.http.get(api.url("/jobs"), params={"max_results": 0})
    assert r.status_code == 400


def test_list_filters(api):
    submitted(api, name="parent-a-child", parent_job_name="parent-a")
    submitted(api, name="plain")
    submitted(api, name="parent-b-child", parent_job_name="parent-b")
    submitted(api, name="to-cancel")
    api.http.post(api.url("/jobs/to-cancel/cancel"))

    def names(**params: Any) -> list[str]:
        r = api.http.get(api.url("/jobs"), params=params)
        assert r.status_code == 200, r.text
        return [j["name"] for j in r.json()["value"]]

    assert names(parent_job_name="parent-a") == ["parent-a-child"]
    assert names(status="Canceled") == ["to-cancel"]
    # Children list under their parent only, as in Azure ML.
    assert names(status="Queued") == ["plain"]
    assert [j.name for j in api.ml.jobs.list(parent_job_name="parent-b")] == ["parent-b-child"]

    assert api.http.post(api.url("/jobs/to-cancel/archive")).status_code == 200
    assert "to-cancel" not in names()
    assert names(list_view_type="ArchivedOnly") == ["to-cancel"]
    assert "to-cancel" in names(list_view_type="All")
    assert job(api, "to-cancel")["archived"] is True
    assert api.http.post(api.url("/jobs/to-cancel/restore")).status_code == 200
    assert "to-cancel" in names()
    r = api.http.get(api.url("/jobs"), params={"list_view_type": "Sometimes"})
    assert r.status_code == 400


def test_archive_needs_a_finished_job(api):
    name = submitted(api)["name"]
    r = api.http.post(api.url(f"/jobs/{name}/archive"))
    assert r.status_code == 409 and error_of(r)["code"] == "INVALID_STATE" and "Queued" in error_of(r)["message"]
    assert name in [j["name"] for j in api.http.get(api.url("/jobs")).json()["value"]]
    assert "archived" not in job(api, name)
    assert api.http.post(api.url("/jobs/nosuch/archive")).status_code == 404


def test_update_metadata_only(api):
    name = submitted(api, tags={"a": "1"})["name"]
    r = api.http.patch(api.url(f"/jobs/{name}"), json={"display_name": "renamed", "tags": {"b": 2}, "description": "d"})
    assert r.status_code == 200, r.text
    got = job(api, name)
    assert got["display_name"] == "renamed" and got["tags"] == {"b": "2"} and got["description"] == "d"
    assert got["status"] == "Queued"
    updated = api.ml.jobs.update(name, experiment_name="moved")
    assert updated.experiment_name == "moved" and job(api, name)["experiment_name"] == "moved"

    for field, value in (("command", "rm -rf /"), ("status", "Completed"), ("compute", "other")):
        r = api.http.patch(api.url(f"/jobs/{name}"), json={field: value})
        assert r.status_code == 400 and field in error_of(r)["message"], r.text
    got = job(api, name)
    assert got["command"] == "echo hi" and got["status"] == "Queued" and got["compute"] == "local"
    r = api.http.patch(api.url(f"/jobs/{name}"), json={"tags": "not a mapping"})
    assert r.status_code == 400
    assert api.http.patch(api.url("/jobs/nosuch"), json={"display_name": "x"}).status_code == 404


def test_cancel_of_a_queued_job_is_immediate(api):
    name = submitted(api)["name"]
    r = api.http.post(api.url(f"/jobs/{name}/cancel"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "Canceled" and "end_time" in body
    assert "shoal.status_time.Canceled" in body["properties"]
    assert "start_time" not in body
    assert job(api, name)["status"] == "Canceled"
    r = api.http.post(api.url(f"/jobs/{name}/cancel"))
    assert r.status_code == 409 and error_of(r)["code"] == "INVALID_STATE" and "Canceled" in error_of(r)["message"]
    assert api.http.post(api.url("/jobs/nosuch/cancel")).status_code == 404
    # The SDK's begin_cancel on a finished job raises the same error.
    with pytest.raises(InvalidStateError, match="already finished"):
        api.ml.jobs.begin_cancel(name)


def test_cancel_of_a_started_job_asks_its_runner(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    assert report(api, name, headers, "Running").status_code == 200
    r = api.http.post(api.url(f"/jobs/{name}/cancel"))
    assert r.status_code == 200 and r.json()["status"] == "CancelRequested"
    assert api.http.post(api.url(f"/jobs/{name}/cancel")).json()["status"] == "CancelRequested"
    beat = api.anon.post(api.url(f"/jobs/{name}/heartbeat"), headers=headers).json()
    assert beat == {"status": "CancelRequested", "cancel_requested": True}
    # A late Running/Finalizing report does not undo the cancel request.
    assert report(api, name, headers, "Finalizing").json() == {"status": "CancelRequested", "cancel_requested": True}
    r = report(api, name, headers, "Canceled")
    assert r.status_code == 200 and r.json()["status"] == "Canceled"
    assert "end_time" in job(api, name)


# -- runner routes -----------------------------------------------------------------------------


def test_runner_lifecycle(api):
    name = submitted(api, command="echo ${{inputs.n}}", inputs={"n": 1}, environment_variables={"K": "v"})["name"]
    headers = start_attempt(api, name)

    r = api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=headers)
    assert r.status_code == 200, r.text
    spec = r.json()
    assert (spec["job"], spec["attempt"], spec["status"], spec["workspace"]) == (name, 1, "Preparing", "default")
    assert spec["command"] == "echo ${{inputs.n}}" and spec["environment_variables"] == {"K": "v"}
    assert spec["mlflow_tracking_uri"] == "http://testserver/api/v1/workspaces/default/mlflow"
    exp = api.http.get(
        api.url("/mlflow/api/2.0/mlflow/experiments/get-by-name"), params={"experiment_name": spec["experiment_name"]}
    )
    assert spec["experiment_id"] == exp.json()["experiment"]["experiment_id"]  # MLFLOW_EXPERIMENT_ID of the job

    before = row_of(api, name)["heartbeat_at"]
    r = api.anon.post(api.url(f"/jobs/{name}/heartbeat"), headers=headers)
    assert r.status_code == 200 and r.json() == {"status": "Preparing", "cancel_requested": False}
    assert row_of(api, name)["heartbeat_at"] > before

    r = report(api, name, headers, "Running")
    assert r.status_code == 200 and r.json() == {"status": "Running", "cancel_requested": False}
    running = job(api, name)
    assert running["status"] == "Running" and "start_time" in running and "end_time" not in running
    assert report(api, name, headers, "Running").status_code == 200  # a retried report is harmless
    assert report(api, name, headers, "Finalizing").json()["status"] == "Finalizing"
    r = report(api, name, headers, "Completed", exit_code=0)
    assert r.status_code == 200 and r.json()["status"] == "Completed"
    done = job(api, name)
    assert done["status"] == "Completed" and done["exit_code"] == 0
    assert done["start_time"] == running["start_time"] and done["end_time"] >= done["start_time"]
    assert {k.rsplit(".", 1)[1] for k in done["properties"]} >= {
        "NotStarted",
        "Queued",
        "Preparing",
        "Running",
        "Finalizing",
        "Completed",
    }
    assert report(api, name, headers, "Completed", exit_code=0).status_code == 200  # replay: same answer
    r = report(api, name, headers, "Running")
    assert r.status_code == 409 and error_of(r)["code"] == "INVALID_STATE"
    r = report(api, name, headers, "Failed")
    assert r.status_code == 409
    assert job(api, name)["status"] == "Completed"


def test_a_completed_report_straight_from_running_records_finalizing_on_the_way(api):
    # A runner whose outputs upload in a moment sends no Finalizing report of its own (one request
    # fewer a pipeline step); the job's history still holds the state, as every completed job's does.
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    assert report(api, name, headers, "Running").json()["status"] == "Running"
    r = report(api, name, headers, "Completed", exit_code=0)
    assert r.status_code == 200 and r.json()["status"] == "Completed"
    times = {k.rsplit(".", 1)[1]: v for k, v in job(api, name)["properties"].items() if ".status_time." in k}
    assert {"Running", "Finalizing", "Completed"} <= set(times)
    assert times["Running"] <= times["Finalizing"] <= times["Completed"]


def test_an_outcome_report_hands_the_runners_handle_to_the_dispatcher(api):
    # What a runner's compute holds for it (a Ray node's share) goes back when it reports its
    # outcome, not when it exits after tidying: the dispatcher's next tick gives it back first.
    ctx = api.app.state.ctx  # no dispatcher runs in these tests: nothing takes the handles
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    with ctx.db.write() as session:
        job_service.get_row(session, workspace_id(session, "default"), name).runner_handle = "ray:its-share"
    assert report(api, name, headers, "Running").status_code == 200
    assert ctx.take_reported() == []  # still running
    assert report(api, name, headers, "Completed", exit_code=0).json()["status"] == "Completed"
    assert ctx.take_reported() == ["ray:its-share"]
    assert row_of(api, name)["runner_pid"] is None  # the job row no longer names it
    assert report(api, name, headers, "Completed", exit_code=0).status_code == 200  # a retried report
    assert ctx.take_reported() == []  # handed over once


def test_runner_failure_and_bad_reports(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    for status, code in (("Bogus", 400), ("Queued", 400), ("Preparing", 400), ("NotResponding", 400)):
        r = report(api, name, headers, status)
        assert r.status_code == code, (status, r.text)
    r = report(api, name, headers, "Completed")  # Preparing -> Completed skips Running
    assert r.status_code == 409 and error_of(r)["code"] == "INVALID_STATE"
    assert job(api, name)["status"] == "Preparing"
    error = {"code": "USER_ERROR", "message": "the command exited with code 3"}
    r = report(api, name, headers, "Failed", exit_code=3, error=error)
    assert r.status_code == 200 and r.json()["status"] == "Failed"
    got = job(api, name)
    assert got["exit_code"] == 3 and got["error"] == error and "end_time" in got


def test_a_timed_out_job_reported_canceled_goes_through_cancel_requested(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    report(api, name, headers, "Running")
    error = {"code": "JOB_TIMEOUT", "message": "ran past limits.timeout"}
    r = report(api, name, headers, "Canceled", error=error)
    assert r.status_code == 200 and r.json()["status"] == "Canceled"
    got = job(api, name)
    assert got["error"]["code"] == "JOB_TIMEOUT"
    assert "shoal.status_time.CancelRequested" in got["properties"]


def test_heartbeat_brings_a_not_responding_job_back(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    report(api, name, headers, "Running")
    force_status(api, name, "NotResponding")
    r = api.anon.post(api.url(f"/jobs/{name}/heartbeat"), headers=headers)
    assert r.status_code == 200 and r.json() == {"status": "Running", "cancel_requested": False}
    force_status(api, name, "NotResponding")
    assert report(api, name, headers, "Finalizing").json()["status"] == "Finalizing"


def test_a_replaced_attempt_is_refused_everywhere(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name, attempt=1)
    assert append(api, name, headers, 0, b"current\n").status_code == 200
    report(api, name, headers, "Running")
    before = row_of(api, name)
    stale = bearer(api.app.state.job_signer.issue("default", name, 0))
    calls = {
        "runspec": lambda: api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=stale),
        "heartbeat": lambda: api.anon.post(api.url(f"/jobs/{name}/heartbeat"), headers=stale),
        "running": lambda: report(api, name, stale, "Running"),
        "completed": lambda: report(api, name, stale, "Completed", exit_code=0),
        "failed": lambda: report(api, name, stale, "Failed", exit_code=1),
        "canceled": lambda: report(api, name, stale, "Canceled"),
        "log": lambda: append(api, name, stale, 8, b"stale\n"),
        "log-at-0": lambda: append(api, name, stale, 0, b"stale stale stale\n"),
    }
    for what, call in calls.items():
        r = call()
        assert r.status_code == 409, (what, r.text)
        err = error_of(r)
        assert err["code"] == "CONFLICT" and "replaced" in err["message"] and err["details"] == {"attempt": 1}, what
    assert row_of(api, name) == before
    assert read_log(api, name).content == b"current\n"
    # The admin may act for an attempt, but only the current one.
    r = api.http.get(api.url(f"/jobs/{name}/runspec"), params={"attempt": 0})
    assert r.status_code == 409
    assert api.http.get(api.url(f"/jobs/{name}/runspec"), params={"attempt": 1}).status_code == 200
    r = api.http.get(api.url(f"/jobs/{name}/runspec"))
    assert r.status_code == 403 and "attempt" in error_of(r)["message"]


def test_job_tokens_are_scoped(api):
    a = submitted(api, name="job-a")["name"]
    b = submitted(api, name="job-b")["name"]
    headers = start_attempt(api, a)
    start_attempt(api, b)
    signer = api.app.state.job_signer
    for r in (
        api.anon.get(api.url(f"/jobs/{b}/runspec"), headers=headers),
        api.anon.post(api.url(f"/jobs/{b}/heartbeat"), headers=headers),
        report(api, b, headers, "Running"),
        append(api, b, headers, 0, b"x"),
    ):
        assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED", r.text
        assert "job-a" in error_of(r)["message"]
    assert job(api, b)["status"] == "Preparing" and read_log(api, b).headers["X-Log-Size"] == "0"

    assert api.http.put("/api/v1/workspaces/other-ws", json={}).status_code in (200, 201)
    r = api.http.post(api.url("/jobs", "other-ws"), json={"name": a, "command": "echo", "environment": ENV})
    assert r.status_code == 200, r.text
    start_attempt(api, a, workspace="other-ws")
    for r in (
        api.anon.get(api.url(f"/jobs/{a}/runspec", "other-ws"), headers=headers),
        api.anon.get(api.url("/jobs", "other-ws"), headers=headers),
        api.anon.post(api.url(f"/jobs/{a}/status", "other-ws"), headers=headers, json={"status": "Running"}),
    ):
        assert r.status_code == 403 and "default" in error_of(r)["message"], r.text
    assert job(api, a)["status"] == "Preparing"
    r = api.anon.put("/api/v1/workspaces/made-by-job", headers=headers, json={})
    assert r.status_code == 403 and "admin" in error_of(r)["message"]
    assert api.http.get("/api/v1/workspaces/made-by-job").status_code == 404
    r = api.anon.get(api.url("/datastores/workspaceblobstore"), headers=headers, params={"include_secrets": "true"})
    assert r.status_code == 403

    token = signer.issue("default", a, 1)
    forged = token.replace(".1.", ".2.")
    for bad in (forged, token[:-2] + "00", "shoaljob.default.job-a.1", "nonsense"):
        r = api.anon.get(api.url(f"/jobs/{a}/runspec"), headers=bearer(bad))
        assert r.status_code == 401, bad
    assert api.anon.get(api.url(f"/jobs/{a}/runspec"), headers=headers).status_code == 200


def test_log_chunks(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    r = append(api, name, headers, 0, b"hello\n")
    assert r.status_code == 200 and r.json() == {"size": 6}
    assert append(api, name, headers, 0, b"hello\n").json() == {"size": 6}  # a replay adds nothing
    assert append(api, name, headers, 3, b"lo\nworld\n").json() == {"size": 12}  # overlap: only the new part
    r = append(api, name, headers, 20, b"gap")
    assert r.status_code == 409 and error_of(r)["code"] == "CONFLICT" and error_of(r)["details"] == {"size": 12}
    assert append(api, name, headers, 0, b"", path="system_logs/environment_build.txt").json() == {"size": 0}
    assert append(api, name, headers, 0, b"building\n", path="system_logs/environment_build.txt").json() == {"size": 9}

    r = read_log(api, name)
    assert r.status_code == 200 and r.content == b"hello\nworld\n" and r.headers["X-Log-Size"] == "12"
    r = read_log(api, name, offset=6)
    assert r.content == b"world\n" and r.headers["X-Log-Size"] == "12"
    assert read_log(api, name, offset=6, limit=3).content == b"wor"
    assert read_log(api, name, offset=50).content == b""
    assert read_log(api, name, path="system_logs/environment_build.txt").content == b"building\n"
    data, size = api.ml.jobs.read_log(name, "user_logs/std_log.txt", 0)
    assert (data, size) == (b"hello\nworld\n", 12)
    missing = read_log(api, name, path="user_logs/std_log_process_7.txt")
    assert missing.status_code == 200 and missing.content == b"" and missing.headers["X-Log-Size"] == "0"

    for bad in ("../x", "/etc/passwd", "user_logs/../../x", ""):
        assert append(api, name, headers, 0, b"x", path=bad).status_code == 400, bad
        assert read_log(api, name, path=bad).status_code == 400, bad
    assert read_log(api, name, offset=-1).status_code == 400
    assert read_log(api, "nosuch").status_code == 404
    assert read_log(api, name).content == b"hello\nworld\n"


def test_a_negative_log_offset_is_refused(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    r = append(api, name, headers, -5, b"0123456789")
    assert r.status_code == 400
    assert read_log(api, name).headers["X-Log-Size"] == "0"


def test_named_outputs_become_assets_on_completion(api):
    put_data(api, "taken-out", "1", f"{BLOB}/elsewhere/")
    name = submitted(
        api,
        outputs={
            "o": {"type": "uri_folder", "name": "reg-out", "version": "3"},
            "m": {"type": "custom_model", "name": "reg-model", "version": "1"},
            "plain": {"type": "uri_folder"},
        },
    )["name"]
    headers = start_attempt(api, name)
    report(api, name, headers, "Running")
    assert data_versions(api, "reg-out") == []  # nothing before completion
    r = report(api, name, headers, "Completed", exit_code=0)
    assert r.status_code == 200 and r.json()["status"] == "Completed"
    data = api.http.get(api.url("/data/reg-out/versions/3"))
    assert data.status_code == 200, data.text
    assert data.json()["path"] == f"{BLOB}/azureml/{name}/o/" and data.json()["type"] == "uri_folder"
    model = api.http.get(api.url("/models/reg-model/versions/1"))
    assert model.status_code == 200 and model.json()["path"] == f"{BLOB}/azureml/{name}/m/"
    assert data_versions(api, "reg-out") == ["3"]


def test_an_output_that_cannot_be_registered_fails_the_job(api):
    put_data(api, "taken-out", "1", f"{BLOB}/elsewhere/")
    name = submitted(api, outputs={"o": {"name": "taken-out", "version": "1"}})["name"]
    headers = start_attempt(api, name)
    report(api, name, headers, "Running")
    r = report(api, name, headers, "Completed", exit_code=0)
    assert r.status_code == 200 and r.json()["status"] == "Failed"
    got = job(api, name)
    assert got["error"]["code"] == "OUTPUT_REGISTRATION_FAILED" and "taken-out" in got["error"]["message"]
    assert api.http.get(api.url("/data/taken-out/versions/1")).json()["path"] == f"{BLOB}/elsewhere/"


def test_a_refused_completed_report_registers_nothing(api):
    name = submitted(api, outputs={"o": {"name": "early-out", "version": "1"}})["name"]
    headers = start_attempt(api, name)  # Preparing: Completed is not allowed yet
    r = report(api, name, headers, "Completed", exit_code=0)
    assert r.status_code == 409
    assert data_versions(api, "early-out") == []


def test_a_replayed_completed_report_registers_once(api):
    name = submitted(api, outputs={"o": {"name": "auto-out"}})["name"]
    headers = start_attempt(api, name)
    report(api, name, headers, "Running")
    assert report(api, name, headers, "Completed", exit_code=0).status_code == 200
    assert report(api, name, headers, "Completed", exit_code=0).status_code == 200  # the runner retried
    assert data_versions(api, "auto-out") == ["1"]


# -- dispatcher, with a backend that starts nothing ------------------------------------------


class FakeBackend:
    """The compute contract (``shoal.compute.base``) with nothing started: cancels are recorded as
    the signals the local backend sends (SIGTERM, or SIGKILL when forced)."""

    name = "fake"
    capabilities = Capabilities(max_nodes=None, multi_node=False, survives_restart=True)

    def __init__(self) -> None:
        self.launched: list[RunnerAttempt] = []
        self.running: set[str] = set()
        self.signals: list[tuple[str, int]] = []
        self.cleaned: list[AttemptKey] = []

    def submit(self, attempt: RunnerAttempt) -> str:
        pid = str(100000 + len(self.launched))
        self.launched.append(attempt)
        self.running.add(pid)
        return pid

    def poll(self, handle: str) -> bool:
        return handle in self.running

    def cancel(self, handle: str, attempt: AttemptKey, *, force: bool = False) -> None:
        self.signals.append((handle, signal.SIGKILL if force else signal.SIGTERM))

    def end_user_processes(self, attempt: AttemptKey) -> None:
        self.cleaned.append(attempt)

    def reap(self) -> None:
        pass

    def logs_location(self, attempt: AttemptKey) -> Path:
        return Path("/nonexistent") / attempt.job / "runner.log"

    def unplaceable(self, attempt: RunnerAttempt) -> str | None:
        return None

    def exit_reason(self, handle: str) -> dict[str, str] | None:
        return None


@pytest.fixture
def dispatcher(api):
    backend = FakeBackend()
    d = Dispatcher(api.app.state.ctx, "http://testserver", api.app.state.job_signer, backend=backend)
    d.fake = backend  # type: ignore[attr-defined]
    # As if the server had been up for long: silence is counted from the backdated heartbeats.
    d._started_at = job_service.now() - timedelta(hours=1)
    return d


def test_a_freshly_started_server_gives_runners_time_to_find_it(api):
    """After a restart, runners could not reach the server while it was down: no NotResponding
    for silence older than the server itself."""
    d = Dispatcher(api.app.state.ctx, "http://testserver", api.app.state.job_signer, backend=FakeBackend())
    name = submitted(api, name="restarted")["name"]
    d.tick()
    with api.app.state.ctx.db.write() as session:
        row = job_service.get_row(session, workspace_id(session, "default"), name)
        row.heartbeat_at = job_service.now() - timedelta(seconds=d.heartbeat_timeout * 3)
    d.tick()
    assert job(api, name)["status"] == "Preparing"


def statuses(api, *names: str) -> list[str]:
    return [job(api, n)["status"] for n in names]


def test_dispatcher_starts_jobs_within_capacity_first_in_first_out(api, dispatcher):
    assert api.http.put(api.url("/computes/two"), json={"type": "amlcompute", "max_instances": 2}).status_code == 200
    a = submitted(api, name="a", compute="two")["name"]
    b = submitted(api, name="b", compute="two", resources={"instance_count": 2})["name"]
    c = submitted(api, name="c", compute="two")["name"]
    local = submitted(api, name="on-local")["name"]
    dispatcher.tick()
    assert statuses(api, a, b, c, local) == ["Preparing", "Queued", "Queued", "Preparing"]  # c must not overtake b
    row = row_of(api, a)
    assert row["attempt"] == 1 and row["runner_pid"] is not None
    launched = dispatcher.fake.launched[0]
    assert (launched.workspace, launched.job, launched.attempt, launched.nodes) == ("default", "a", 1, 1)
    assert launched.argv is None
    claim = api.app.state.job_signer.verify(launched.token)
    assert (claim.workspace, claim.job, claim.attempt) == ("default", "a", 1)
    assert launched.server_url == "http://testserver"
    assert float(launched.env["SHOAL_HEARTBEAT_SECONDS"]) == 5.0

    headers = bearer(launched.token)
    report(api, a, headers, "Running")
    report(api, a, headers, "Completed", exit_code=0)
    dispatcher.tick()
    assert statuses(api, b, c) == ["Preparing", "Queued"]
    assert (dispatcher.fake.launched[-1].job, dispatcher.fake.launched[-1].nodes) == ("b", 2)
    force_status(api, b, "Failed")
    dispatcher.tick()
    assert statuses(api, c) == ["Preparing"]


def test_a_job_larger_than_its_cluster_does_not_block_its_queue(api, dispatcher):
    api.http.put(api.url("/computes/one"), json={"type": "amlcompute", "max_instances": 1})
    r = submit(api, name="too-big", compute="one", resources={"instance_count": 2})
    if r.status_code != 200:  # refused at submission: the better answer
        assert r.status_code == 400 and "max_instances" in error_of(r)["message"]
    small = submitted(api, name="small", compute="one")["name"]
    dispatcher.tick()
    dispatcher.tick()
    if r.status_code == 200:  # or accepted, then failed by the dispatcher
        assert job(api, "too-big")["status"] == "Failed"
    assert job(api, small)["status"] == "Preparing"


def test_dispatcher_liveness_and_cancel(api, dispatcher):
    lost = submitted(api, name="lost")["name"]
    quiet = submitted(api, name="quiet")["name"]
    canceled = submitted(api, name="canceled")["name"]
    dispatcher.tick()
    assert statuses(api, lost, quiet, canceled) == ["Preparing"] * 3
    pids = {n: row_of(api, n)["runner_pid"] for n in (lost, quiet, canceled)}

    past = job_service.now() - timedelta(seconds=dispatcher.heartbeat_timeout + 5)
    with api.app.state.ctx.db.write() as session:
        ws = workspace_id(session, "default")
        for n in (lost, quiet):
            job_service.get_row(session, ws, n).heartbeat_at = past
    dispatcher.fake.running.discard(pids[lost])
    api.http.post(api.url(f"/jobs/{canceled}/cancel"))
    dispatcher.tick()
    assert job(api, lost)["error"]["code"] == "RUNNER_LOST"
    assert dispatcher.fake.cleaned == [AttemptKey("default", lost, 1)]  # the groups it left are ended
    assert statuses(api, lost, quiet, canceled) == ["Failed", "NotResponding", "CancelRequested"]
    assert (pids[canceled], signal.SIGTERM) in dispatcher.fake.signals
    dispatcher.tick()
    assert [s for s in dispatcher.fake.signals if s[0] == pids[canceled]] == [(pids[canceled], signal.SIGTERM)]

    dispatcher.fake.running.discard(pids[canceled])  # the runner wound down without reporting
    headers = bearer(api.app.state.job_signer.issue("default", quiet, 1))
    assert api.anon.post(api.url(f"/jobs/{quiet}/heartbeat"), headers=headers).json()["status"] == "Preparing"
    dispatcher.tick()
    assert statuses(api, quiet, canceled) == ["Preparing", "Canceled"]


def test_dispatcher_fails_silent_jobs_and_failed_launches(api, dispatcher):
    silent = submitted(api, name="silent")["name"]
    dispatcher.tick()
    force_status(api, silent, "NotResponding")
    with api.app.state.ctx.db.write() as session:
        row = job_service.get_row(session, workspace_id(session, "default"), silent)
        row.heartbeat_at = job_service.now() - timedelta(seconds=dispatcher.heartbeat_timeout * 2 + 5)
    dispatcher.tick()
    got = job(api, silent)
    assert got["status"] == "Failed" and got["error"]["code"] == "NOT_RESPONDING"

    def refuse(*_: Any) -> int:
        raise OSError("no such interpreter")

    dispatcher.fake.submit = refuse
    broken = submitted(api, name="broken")["name"]
    dispatcher.tick()
    got = job(api, broken)
    assert got["status"] == "Failed" and got["error"]["code"] == "RUNNER_START_FAILED"
    assert "no such interpreter" in got["error"]["message"]


def test_a_job_failed_for_silence_stops_its_live_runner(api, dispatcher):
    name = submitted(api, name="silent-but-alive")["name"]
    dispatcher.tick()
    pid = row_of(api, name)["runner_pid"]
    force_status(api, name, "NotResponding")
    with api.app.state.ctx.db.write() as session:
        row = job_service.get_row(session, workspace_id(session, "default"), name)
        row.heartbeat_at = job_service.now() - timedelta(seconds=dispatcher.heartbeat_timeout * 2 + 5)
    dispatcher.tick()
    assert job(api, name)["status"] == "Failed"
    assert pid in [p for p, _ in dispatcher.fake.signals]


def test_a_heartbeat_on_an_ended_job_tells_the_runner_to_stop(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    report(api, name, headers, "Running")
    force_status(api, name, "Failed")  # e.g. the dispatcher gave up on it as NotResponding
    r = api.anon.post(api.url(f"/jobs/{name}/heartbeat"), headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "Failed"
    assert r.json()["cancel_requested"] is True


def test_runner_reports_are_validated(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    assert report(api, name, headers, "Running", error="oops").status_code in (400, 422)
    assert report(api, name, headers, "Running", exit_code="zero").status_code in (400, 422)
    got = api.ml.jobs.get(name)
    assert got.error is None and got.exit_code is None


def test_a_log_path_that_is_not_a_file_is_refused(api):
    name = submitted(api)["name"]
    headers = start_attempt(api, name)
    assert append(api, name, headers, 0, b"line\n").json() == {"size": 5}
    r = append(api, name, headers, 0, b"lost?\n", path="user_logs")
    assert r.status_code == 400, r.text
    r = append(api, name, headers, 0, b"x", path="user_logs/std_log.txt/below")
    assert r.status_code == 400, r.text


def test_update_values_are_validated(api):
    name = submitted(api, experiment_name="exp")["name"]
    r = api.http.patch(api.url(f"/jobs/{name}"), json={"display_name": {"not": "a string"}})
    assert r.status_code in (400, 422)
    r = api.http.patch(api.url(f"/jobs/{name}"), json={"experiment_name": None})
    assert r.status_code in (400, 422)
    got = api.ml.jobs.get(name)
    assert got.display_name == name and got.experiment_name == "exp"


def test_job_tokens_cannot_change_the_workspace_and_expire_with_their_job(api):
    """Code in a job holds its token (MLFLOW_TRACKING_TOKEN): it may read and track its run, but
    not submit jobs, change resources or assets, and the token is worthless once the job ends."""
    name = submitted(api)["name"]
    headers = start_attempt(api, name, attempt=1)
    assert api.anon.get(api.url("/datastores"), headers=headers).status_code == 200
    refused = {
        "submit": api.anon.post(api.url("/jobs"), headers=headers, json={"command": "echo", "environment": "x"}),
        "cancel": api.anon.post(api.url(f"/jobs/{name}/cancel"), headers=headers),
        "compute": api.anon.put(api.url("/computes/c1"), headers=headers, json={"type": "amlcompute"}),
        "delete datastore": api.anon.delete(api.url("/datastores/workspaceblobstore"), headers=headers),
        "model": api.anon.post(api.url("/models/m/versions"), headers=headers, json={"path": "https://x/y"}),
    }
    assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
    report(api, name, headers, "Running")
    report(api, name, headers, "Completed", exit_code=0)
    assert api.anon.get(api.url("/datastores"), headers=headers).status_code == 401
    assert report(api, name, headers, "Completed", exit_code=0).status_code == 200  # its runner's replay still works


def test_blob_urls_of_a_registered_account_are_read_through_its_datastore(sqlite_api):
    """As Azure resolves them: an https:// or wasbs:// URL inside a registered azure_blob
    datastore's container becomes that datastore's path (read with its credentials); any other
    URL is kept as given."""
    api = sqlite_api
    store = {"type": "azure_blob", "account_name": "acct", "container_name": "data"}
    assert (
        api.http.put(api.url("/datastores/acctdata"), json={**store, "credentials": {"account_key": "k"}}).status_code
        == 200
    )
    other = {**store, "container_name": "other", "endpoint": "http://127.0.0.1:10000"}
    assert api.http.put(api.url("/datastores/emulated"), json=other).status_code == 200
    inputs = {
        "a": {"type": "uri_file", "path": "https://acct.blob.core.windows.net/data/x/y%20z.csv"},
        "b": {"type": "uri_folder", "path": "wasbs://data@ACCT.blob.core.windows.net/folder/"},
        "c": {"type": "uri_file", "path": "http://127.0.0.1:10000/acct/other/f.csv"},
        "d": {"type": "uri_file", "path": "https://acct.blob.core.windows.net/unregistered/f.csv"},
        "e": {"type": "uri_file", "path": "https://someone.blob.core.windows.net/data/f.csv"},
    }
    name = submitted(api, command="echo ${{inputs.a}}", inputs=inputs)["name"]
    got = {k: v.get("uri") for k, v in resolved(api, name)["inputs"].items()}
    assert got == {
        "a": "azureml://datastores/acctdata/paths/x/y z.csv",
        "b": "azureml://datastores/acctdata/paths/folder/",
        "c": "azureml://datastores/emulated/paths/f.csv",
        "d": inputs["d"]["path"],
        "e": inputs["e"]["path"],
    }
