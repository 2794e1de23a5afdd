"""The real MLflow client against a real Shoal server: experiments, runs, logging, history, search."""

from __future__ import annotations

import json
import time
import uuid

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = pytest.mark.e2e


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_experiments_create_get_search_and_duplicate(mlflow_env):
    client = MlflowClient()
    assert client.get_experiment("0").name == "Default"
    name = _name("exp")
    exp_id = client.create_experiment(name, tags={"team": "a"})
    got = client.get_experiment(exp_id)
    assert got.name == name and got.tags == {"team": "a"} and got.lifecycle_stage == "active"
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    with pytest.raises(MlflowException) as err:
        client.create_experiment(name)
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as err:
        client.get_experiment("999999")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    found = client.search_experiments(filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in found] == [exp_id]
    client.set_experiment_tag(exp_id, "stage", "dev")
    client.rename_experiment(exp_id, name + "-renamed")
    assert client.get_experiment(exp_id).name == name + "-renamed"
    assert client.get_experiment(exp_id).tags["stage"] == "dev"
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert exp_id not in [e.experiment_id for e in client.search_experiments()]
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_run_logging_roundtrip_replay_and_param_conflict(mlflow_env):
    client = MlflowClient()
    exp_id = client.create_experiment(_name("runs"))
    run = client.create_run(exp_id, run_name="first")
    rid = run.info.run_id
    assert run.info.status == "RUNNING" and run.info.run_name == "first"
    client.log_param(rid, "lr", "0.1")
    client.log_param(rid, "lr", "0.1")  # the same value again is fine
    client.log_metric(rid, "loss", 0.5, step=0)
    client.set_tag(rid, "team", "x")
    now = int(time.time() * 1000)
    batch = dict(
        metrics=[Metric("loss", 0.25, now, 1), Metric("acc", 0.9, now, 1)],
        params=[Param("layers", "3")],
        tags=[RunTag("note", "hi")],
    )
    client.log_batch(rid, **batch)
    client.log_batch(rid, **batch)  # a replayed batch adds nothing
    got = client.get_run(rid)
    assert got.data.params == {"lr": "0.1", "layers": "3"}
    assert got.data.metrics == {"loss": 0.25, "acc": 0.9}
    assert got.data.tags["team"] == "x" and got.data.tags["note"] == "hi"
    assert len(client.get_metric_history(rid, "loss")) == 2
    with pytest.raises(MlflowException) as err:
        client.log_param(rid, "lr", "0.2")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_tag(rid, "note")
    assert "note" not in client.get_run(rid).data.tags
    with pytest.raises(MlflowException) as err:
        client.get_run("no-such-run")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.set_terminated(rid, "FINISHED")
    assert client.get_run(rid).info.status == "FINISHED"
    job = json.loads(mlflow_env("job", "show", "-n", rid).out)
    assert job["status"] == "Completed" and job["type"] == "mlflow_run"


def test_metric_history_is_paged(mlflow_env):
    client = MlflowClient()
    rid = client.create_run("0").info.run_id
    now = int(time.time() * 1000)
    for start in range(0, 2500, 1000):
        client.log_batch(rid, metrics=[Metric("m", float(i), now, i) for i in range(start, min(start + 1000, 2500))])
    assert len(client.get_metric_history(rid, "m")) == 2500
    store = client._tracking_client.store
    steps, token, pages = [], None, 0
    while True:
        page = store.get_metric_history(rid, "m", max_results=1000, page_token=token)
        steps += [m.step for m in page]
        pages += 1
        token = page.token
        if not token:
            break
    assert pages == 3 and steps == list(range(2500))


def test_search_runs_filters_order_and_lifecycle(mlflow_env):
    client = MlflowClient()
    exp_id = client.create_experiment(_name("search"))
    ids = []
    for i in range(4):
        rid = client.create_run(exp_id, run_name=f"fox-{i}").info.run_id
        client.log_batch(
            rid,
            metrics=[Metric("loss", 1.0 / (i + 1), int(time.time() * 1000), 0)],
            params=[Param("model", "cnn" if i % 2 else "mlp")],
            tags=[RunTag("t", f"v{i}")],
        )
        ids.append(rid)
    client.set_terminated(ids[0], "FINISHED")

    def search(filter_string="", order_by=None, **kw):
        return [r.info.run_id for r in client.search_runs([exp_id], filter_string, order_by=order_by, **kw)]

    assert search("metrics.loss < 0.4", ["metrics.loss ASC"]) == [ids[3], ids[2]]
    assert set(search("params.model = 'cnn'")) == {ids[1], ids[3]}
    assert set(search("tags.t != 'v0' AND params.model = 'mlp'")) == {ids[2]}
    assert search("attributes.status = 'FINISHED'") == [ids[0]]
    assert set(search("attributes.run_name LIKE 'fox-%'")) == set(ids)
    assert search("attributes.run_name ILIKE 'FOX-2'") == [ids[2]]
    assert set(search("tags.`t` IN ('v1', 'v2')")) == {ids[1], ids[2]}
    assert search("", ["metrics.loss DESC"]) == ids
    assert search("", ["attributes.start_time DESC"])[0] == ids[3]
    page = client.search_runs([exp_id], max_results=3)
    assert len(page) == 3 and page.token
    assert len(client.search_runs([exp_id], max_results=3, page_token=page.token)) == 1
    with pytest.raises(MlflowException) as err:
        client.search_runs([exp_id], "metrics.loss = 'x'")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_run(ids[1])
    assert ids[1] not in search()
    assert client.get_run(ids[1]).info.lifecycle_stage == "deleted"
    assert search(run_view_type=mlflow.entities.ViewType.DELETED_ONLY) == [ids[1]]
    client.restore_run(ids[1])
    assert ids[1] in search()


def test_fluent_run_from_outside_is_a_job(mlflow_env):
    mlflow.set_experiment(_name("fluent"))
    with mlflow.start_run(run_name="outside") as run:
        mlflow.log_param("p", "a")
        mlflow.log_metrics({"loss": 0.3, "acc": 0.7})
        mlflow.log_metric("loss", 0.1, step=1)
        mlflow.log_input(mlflow.data.from_dict({"x": [1, 2]}, name="d"), context="training") if hasattr(
            mlflow.data, "from_dict"
        ) else None
        with mlflow.start_run(nested=True) as child:
            mlflow.log_metric("inner", 1.0)
    rid = run.info.run_id
    job = json.loads(mlflow_env("job", "show", "-n", rid).out)
    assert job["status"] == "Completed"
    assert job["params"] == {"p": "a"} and job["metrics"] == {"loss": 0.1, "acc": 0.7}
    children = json.loads(mlflow_env("job", "list", "--parent-job-name", rid).out)
    assert [c["name"] for c in children] == [child.info.run_id]
    assert MlflowClient().get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == rid


def test_errors_use_mlflows_format(mlflow_env):
    import httpx

    uri = mlflow.get_tracking_uri()
    bad = httpx.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": "x"})
    assert bad.status_code == 401 and bad.json()["error_code"] == "UNAUTHENTICATED"
    token = (mlflow_env.home / "token").read_text().strip()
    missing = httpx.get(
        f"{uri}/ajax-api/2.0/mlflow/experiments/get",
        params={"experiment_id": "12345"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert missing.status_code == 404
    assert missing.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No Experiment with id=12345 exists"}
