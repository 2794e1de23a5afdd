"""MLflow 3 logged models with the real client: ``mlflow.pyfunc.log_model`` end to end, loading it
back, ``runs:/`` URIs, and registering it as a Shoal model with ``shoal model create``."""

from __future__ import annotations

import json

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("pandas", reason="mlflow.pyfunc needs numpy and pandas (the dev extra installs them)")
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = pytest.mark.e2e


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n: int) -> None:
        self.n = n

    def predict(self, context, model_input, params=None):
        return [x + self.n for x in model_input]


def test_pyfunc_log_model_load_and_register(mlflow_env, tmp_path):
    client = MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_param("n", 3)
        info = mlflow.pyfunc.log_model(name="model", python_model=AddN(3), pip_requirements=["mlflow-skinny"])
        mlflow.log_text("beside the model", "notes.txt")
    rid = run.info.run_id
    assert info.model_id.startswith("m-") and info.run_id == rid

    model = client.get_logged_model(info.model_id)
    assert model.name == "model" and model.source_run_id == rid and model.status.name == "READY"
    assert model.params == {"n": "3"}
    assert model.artifact_location == f"mlflow-artifacts:/ExperimentRun/dcid.{rid}/models/{info.model_id}/artifacts"
    found = client.search_logged_models(experiment_ids=["0"], filter_string="name = 'model'")
    assert info.model_id in [m.model_id for m in found]
    assert client.search_logged_models(experiment_ids=["0"], filter_string="name = 'nope'") == []

    for uri in (info.model_uri, f"models:/{info.model_id}", f"runs:/{rid}/model"):
        loaded = mlflow.pyfunc.load_model(uri)
        assert list(loaded.predict([1, 2])) == [4, 5], uri
    names = {f.path for f in client.list_artifacts(rid, "model")}
    assert "model/MLmodel" in names
    assert {f.path for f in client.list_artifacts(rid)} >= {"notes.txt", "models"}

    client.set_logged_model_tags(info.model_id, {"team": "a"})
    assert client.get_logged_model(info.model_id).tags["team"] == "a"
    client.delete_logged_model_tag(info.model_id, "team")
    assert "team" not in client.get_logged_model(info.model_id).tags
    with pytest.raises(MlflowException) as err:
        client.get_logged_model("m-doesnotexist")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # Registered as a Shoal model straight from the run.
    created = json.loads(
        mlflow_env("model", "create", "-n", "addn", "--path", f"runs:/{rid}/model", "--type", "mlflow_model").out
    )
    assert created["type"] == "mlflow_model" and "python_function" in created["flavors"]
    assert created["path"].rstrip("/").endswith(f"ExperimentRun/dcid.{rid}/models/{info.model_id}/artifacts")
    # And from the job's artifacts output, as Azure ML writes it.
    again = json.loads(
        mlflow_env(
            "model",
            "create",
            "-n",
            "addn",
            "--path",
            f"azureml://jobs/{rid}/outputs/artifacts/paths/model/",
            "--type",
            "mlflow_model",
        ).out
    )
    assert again["path"] == created["path"] and again["version"] != created["version"]
    dl = tmp_path / "dl"
    mlflow_env("model", "download", "-n", "addn", "-v", str(created["version"]), "--download-path", str(dl))
    assert [p for p in dl.rglob("MLmodel")]


def test_model_logged_without_a_run(mlflow_env):
    client = MlflowClient()
    model = client.create_logged_model(experiment_id="0", name="free")
    assert model.artifact_location == f"mlflow-artifacts:/experiments/0/models/{model.model_id}/artifacts"
    client.log_model_params(model.model_id, {"a": "1"})
    client.finalize_logged_model(model.model_id, "READY")
    got = client.get_logged_model(model.model_id)
    assert got.params == {"a": "1"} and got.status.name == "READY" and not got.source_run_id
    client.delete_logged_model(model.model_id)
    assert model.model_id not in [m.model_id for m in client.search_logged_models(experiment_ids=["0"])]


def test_legacy_log_model_record(mlflow_env):
    from mlflow.models import Model

    client = MlflowClient()
    rid = client.create_run("0").info.run_id
    store = client._tracking_client.store
    for path in ("a", "b"):
        store.record_logged_model(rid, Model(artifact_path=path, run_id=rid, flavors={"python_function": {}}))
    history = json.loads(client.get_run(rid).data.tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["a", "b"]
