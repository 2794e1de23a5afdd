"""NOT_FOUND answers say what exists (or how to list it), with the same code and status."""

from __future__ import annotations

import pytest

from shoal import command
from shoal.entities import AmlCompute
from shoal.errors import NotFoundError

from .conftest import error_of


def test_not_found_names_what_exists(api):
    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu-cluster")).result()
    r = api.http.get(api.url("/computes/gpu-cluster"))
    err = error_of(r)
    assert r.status_code == 404 and err["code"] == "NOT_FOUND"
    assert err["message"] == (
        "compute 'gpu-cluster' not found in workspace 'default'; existing: cpu-cluster (see `shoal compute list`)"
    )
    assert err["details"] == {"kind": "compute", "name": "gpu-cluster"}

    # The SDK raises the same class with the same message.
    with pytest.raises(NotFoundError, match=r"existing: .*workspaceblobstore"):
        api.ml.datastores.get("workspaceblobstor")
    with pytest.raises(NotFoundError, match=r"workspace 'defualt' not found; existing: default"):
        api.ml.workspaces.get("defualt")


def test_job_compute_and_asset_versions_hint(api):
    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu-cluster")).result()
    with pytest.raises(NotFoundError) as info:
        api.ml.jobs.create_or_update(
            command(command="echo hi", environment={"image": "python:3.11"}, compute="gpu-cluster")
        )
    assert "compute 'gpu-cluster' not found in workspace 'default'; existing: cpu-cluster, local" in str(info.value)

    with pytest.raises(NotFoundError, match=r"job 'nosuch' not found in workspace 'default'; see `shoal job list`"):
        api.ml.jobs.get("nosuch")

    r = api.http.put(api.url("/models/m/versions/1"), json={"path": "https://example.com/m"})
    assert r.status_code == 200, r.text
    r = api.http.get(api.url("/models/m/versions/9"))
    assert r.status_code == 404
    assert error_of(r)["message"] == "model 'm' version '9' not found; existing: 1 (see `shoal model list --name m`)"
    r = api.http.get(api.url("/models/n/versions/1"))
    assert r.status_code == 404 and "model 'n' not found in workspace 'default'; existing: m" in error_of(r)["message"]


def test_mlflow_routes_keep_mlflows_message_and_name_close_matches(api):
    mlflow = "/mlflow/api/2.0/mlflow"
    api.http.post(api.url(f"{mlflow}/experiments/create"), json={"name": "churn-model"}).raise_for_status()
    r = api.http.get(api.url(f"{mlflow}/experiments/get-by-name"), params={"experiment_name": "churn-modle"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r.json()["message"] == (
        "Could not find experiment with name 'churn-modle'; existing: churn-model (see `mlflow.search_experiments()`)"
    )
    api.http.post(api.url(f"{mlflow}/registered-models/create"), json={"name": "credit"}).raise_for_status()
    r = api.http.get(api.url(f"{mlflow}/registered-models/get"), params={"name": "credt"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r.json()["message"] == (
        "Registered Model with name=credt not found; existing: credit (see `shoal model list`)"
    )
