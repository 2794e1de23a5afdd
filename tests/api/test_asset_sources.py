"""Assets registered from what jobs wrote, and from other assets: the reference must exist, and
the stored path is the datastore path it stands for (so the asset downloads like any other)."""

from __future__ import annotations

from tests.api.conftest import error_of


def _job(api, name="trainer"):
    body = {
        "name": name,
        "command": "echo ${{outputs.model}}",
        "environment": {"image": "python:3.11"},
        "outputs": {"model": {"type": "custom_model"}},
    }
    r = api.http.post(api.url("/jobs"), json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_model_from_a_job_output(api):
    job = _job(api)
    r = api.http.post(
        api.url("/models/from-job/versions"),
        json={"type": "custom_model", "path": f"azureml://jobs/{job['name']}/outputs/model/paths/weights/"},
    )
    assert r.status_code == 200, r.text
    model = r.json()
    assert model["path"].startswith(f"azureml://datastores/workspaceblobstore/paths/azureml/{job['name']}/model/")
    assert model["path"].endswith("weights/")
    assert model["job_name"] == job["name"]
    assert model["properties"]["shoal.source_path"].startswith("azureml://jobs/")


def test_model_from_a_run_artifact_path(api):
    job = _job(api, name="logger")
    r = api.http.post(api.url("/models/from-run/versions"), json={"type": "custom_model", "path": "runs:/logger/model"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.logger/model"
    assert job["name"] == "logger"


def test_a_missing_job_or_output_is_not_found_and_nothing_is_created(api):
    r = api.http.post(api.url("/models/m/versions"), json={"path": "azureml://jobs/nope/outputs/model/paths/x"})
    assert r.status_code == 404 and "nope" in error_of(r)["message"]
    _job(api)
    r = api.http.post(api.url("/models/m/versions"), json={"path": "azureml://jobs/trainer/outputs/other/paths/x"})
    assert r.status_code == 404 and "other" in error_of(r)["message"]
    assert api.http.get(api.url("/models")).json()["value"] == []


def test_an_azureml_asset_reference_as_a_path_must_exist(api):
    r = api.http.post(api.url("/data/y/versions"), json={"type": "uri_file", "path": "azureml:nope:1"})
    assert r.status_code == 404 and "nope" in error_of(r)["message"]
    assert api.http.get(api.url("/data")).json()["value"] == []
    api.http.put(api.url("/data/base/versions/1"), json={"type": "uri_file", "path": "https://example.com/a.csv"})
    r = api.http.post(api.url("/data/y/versions"), json={"type": "uri_file", "path": "azureml:base:1"})
    assert r.status_code == 200 and r.json()["path"] == "https://example.com/a.csv"
