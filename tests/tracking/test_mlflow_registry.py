"""The MLflow model registry with the real client, on Shoal's model assets: registering from
``log_model(registered_model_name=…)`` and ``register_model``, loading ``models:/m/1`` and
``models:/m@alias`` back, what ``shoal model list/show`` shows, and MLflow's error codes."""

from __future__ import annotations

import json
from pathlib import Path

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


def _log(n: int, registered: str | None = None):
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=AddN(n), pip_requirements=["mlflow-skinny"], registered_model_name=registered
        )
    return run.info.run_id, info


def _code(call) -> str:
    with pytest.raises(MlflowException) as err:
        call()
    return err.value.error_code


def test_log_model_registers_a_model_asset_that_loads_back(mlflow_env):
    client = MlflowClient()
    rid, info = _log(1, registered="reg-addn")
    assert str(info.registered_model_version) == "1"

    version = client.get_model_version("reg-addn", "1")
    assert version.source == f"models:/{info.model_id}"
    assert version.run_id == rid
    assert version.current_stage == "None" and version.status == "READY"
    # The logged model records the version, as with MLflow's own server.
    assert json.loads(client.get_logged_model(info.model_id).tags["mlflow.modelVersions"]) == [
        {"name": "reg-addn", "version": "1"}
    ]

    # A Shoal model asset: `shoal model show/list` see it, with its MLflow origin.
    shown = json.loads(mlflow_env("model", "show", "-n", "reg-addn", "-v", "1").out)
    assert shown["type"] == "mlflow_model" and "python_function" in shown["flavors"]
    assert shown["path"].rstrip("/").endswith(f"ExperimentRun/dcid.{rid}/models/{info.model_id}/artifacts")
    assert shown["job_name"] == rid
    assert shown["properties"]["mlflow.source"] == f"models:/{info.model_id}"
    assert shown["properties"]["mlflow.model_id"] == info.model_id
    listed = json.loads(mlflow_env("model", "list").out)
    assert "reg-addn" in [m["name"] for m in listed]

    # A second version, then load by number, by alias and by stage, without a restart.
    _log(2, registered="reg-addn")
    assert list(mlflow.pyfunc.load_model("models:/reg-addn/1").predict([1])) == [2]
    assert list(mlflow.pyfunc.load_model("models:/reg-addn/2").predict([1])) == [3]
    assert list(mlflow.pyfunc.load_model("models:/reg-addn/latest").predict([1])) == [3]
    client.set_registered_model_alias("reg-addn", "champion", "1")
    assert list(mlflow.pyfunc.load_model("models:/reg-addn@champion").predict([1])) == [2]
    assert client.get_model_version_by_alias("reg-addn", "champion").version == "1"
    assert client.get_model_version("reg-addn", "1").aliases == ["champion"]
    uri = client.get_model_version_download_uri("reg-addn", "2")
    assert uri.startswith("mlflow-artifacts:/ExperimentRun/dcid.") and uri.endswith("/artifacts")

    model = client.get_registered_model("reg-addn")
    assert model.aliases == {"champion": "1"}
    assert [v.version for v in model.latest_versions] == ["2"]

    client.transition_model_version_stage("reg-addn", "1", "production")
    assert [v.version for v in client.get_latest_versions("reg-addn", stages=["Production"])] == ["1"]
    assert {v.current_stage for v in client.get_latest_versions("reg-addn")} == {"Production", "None"}
    assert list(mlflow.pyfunc.load_model("models:/reg-addn/Production").predict([1])) == [2]
    assert json.loads(mlflow_env("model", "show", "-n", "reg-addn", "-v", "1").out)["stage"] == "Production"

    client.delete_registered_model_alias("reg-addn", "champion")
    assert _code(lambda: client.get_model_version_by_alias("reg-addn", "champion")) == "RESOURCE_DOES_NOT_EXIST"


def test_registry_crud_and_search(mlflow_env):
    client = MlflowClient()
    created = client.create_registered_model("crud-m", tags={"team": "a"}, description="first")
    assert created.name == "crud-m" and created.tags == {"team": "a"} and created.description == "first"
    assert _code(lambda: client.create_registered_model("crud-m")) == "RESOURCE_ALREADY_EXISTS"

    rid, info = _log(5)
    v1 = client.create_model_version("crud-m", f"runs:/{rid}/model", run_id=rid, tags={"k": "v"}, description="d1")
    assert v1.version == "1" and v1.tags == {"k": "v"} and v1.description == "d1" and v1.run_id == rid
    # The client's own path: register_model with a runs:/ URI of an MLflow 3 logged model.
    v2 = mlflow.register_model(f"runs:/{rid}/model", "crud-m")
    assert v2.version == "2" and v2.source == f"models:/{info.model_id}"
    assert list(mlflow.pyfunc.load_model("models:/crud-m/1").predict([0])) == [5]

    client.update_registered_model("crud-m", description="second")
    client.set_registered_model_tag("crud-m", "stage", "dev")
    client.delete_registered_model_tag("crud-m", "team")
    got = client.get_registered_model("crud-m")
    assert got.description == "second" and got.tags == {"stage": "dev"}

    client.update_model_version("crud-m", "1", description="better")
    client.set_model_version_tag("crud-m", "1", "quality", "good")
    client.delete_model_version_tag("crud-m", "1", "k")
    v = client.get_model_version("crud-m", "1")
    assert v.description == "better" and v.tags == {"quality": "good"}
    assert json.loads(mlflow_env("model", "show", "-n", "crud-m", "-v", "1").out)["tags"] == {"quality": "good"}

    assert "crud-m" in [m.name for m in client.search_registered_models()]
    assert [m.name for m in client.search_registered_models(filter_string="name = 'crud-m'")] == ["crud-m"]
    assert [m.name for m in client.search_registered_models(filter_string="name LIKE 'crud-%'")] == ["crud-m"]
    assert [m.name for m in client.search_registered_models(filter_string="tags.stage = 'dev'")] == ["crud-m"]
    assert [v.version for v in client.search_model_versions("name = 'crud-m'")] == ["2", "1"]
    assert [v.version for v in client.search_model_versions("name = 'crud-m' and tags.quality = 'good'")] == ["1"]
    assert [v.version for v in client.search_model_versions(f"run_id = '{rid}'") if v.name == "crud-m"] == ["2", "1"]
    paged = client.search_registered_models(max_results=1)
    assert len(paged) == 1 and paged.token

    # A model made with `shoal model create` is a registered model too.
    mlflow_env("model", "create", "-n", "from-shoal", "--path", f"runs:/{rid}/model", "--type", "mlflow_model")
    assert [v.version for v in client.search_model_versions("name = 'from-shoal'")] == ["1"]
    assert list(mlflow.pyfunc.load_model("models:/from-shoal/1").predict([0])) == [5]

    client.rename_registered_model("crud-m", "crud-renamed")
    assert client.get_model_version("crud-renamed", "2").name == "crud-renamed"
    client.delete_model_version("crud-renamed", "1")
    assert _code(lambda: client.get_model_version("crud-renamed", "1")) == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model("crud-renamed")
    assert _code(lambda: client.get_registered_model("crud-renamed")) == "RESOURCE_DOES_NOT_EXIST"
    assert mlflow_env("model", "show", "-n", "crud-renamed", "-v", "2", check=False).code != 0


def test_registry_errors(mlflow_env, tmp_path):
    client = MlflowClient()
    assert _code(lambda: client.get_registered_model("nope")) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: client.create_model_version("nope", "runs:/x/model")) in (
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    )
    client.create_registered_model("err-m")
    assert _code(lambda: client.get_model_version("err-m", "7")) == "RESOURCE_DOES_NOT_EXIST"
    # Sources the server cannot vouch for are refused before anything is stored.
    for source, run_id in (
        (str(tmp_path), None),
        ("runs:/no-such-run/model", None),
        ("mlflow-artifacts:/ExperimentRun/dcid.someone/model", None),
        ("models:/m-doesnotexist", None),
        ("mlflow-artifacts:/ExperimentRun/dcid.x/../../secret", None),
    ):
        code = _code(lambda s=source, r=run_id: client.create_model_version("err-m", s, run_id=r))
        assert code == "INVALID_PARAMETER_VALUE", source
    assert client.search_model_versions("name = 'err-m'") == []

    rid, _ = _log(1)
    other = client.create_run("0").info.run_id
    # An artifact URI must lie inside the run it names.
    bad = f"mlflow-artifacts:/ExperimentRun/dcid.{other}/model"
    assert _code(lambda: client.create_model_version("err-m", bad, run_id=rid)) == "INVALID_PARAMETER_VALUE"
    version = client.create_model_version("err-m", f"runs:/{rid}/model", run_id=rid)
    for alias in ("latest", "v1", "bad alias"):
        code = _code(lambda a=alias: client.set_registered_model_alias("err-m", a, version.version))
        assert code == "INVALID_PARAMETER_VALUE", alias
    assert _code(lambda: client.set_registered_model_alias("err-m", "ok", "99")) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: client.create_registered_model("bad name")) == "INVALID_PARAMETER_VALUE"
    assert _code(lambda: client.transition_model_version_stage("err-m", "1", "Prod")) == "INVALID_PARAMETER_VALUE"
    client.set_registered_model_tag("err-m", "x", "1")
    assert client.get_registered_model("err-m").tags == {"x": "1"}


def test_a_model_uploaded_with_shoal_loads_through_the_registry(mlflow_env, tmp_path):
    """A model asset on the blob datastore (``shoal model create`` from a local folder) is a
    registered model too; its download URI is this server's read-only file routes."""
    folder = tmp_path / "addn"
    mlflow.pyfunc.save_model(str(folder), python_model=AddN(7), pip_requirements=["mlflow-skinny"])
    mlflow_env("model", "create", "-n", "uploaded-m", "--path", str(folder), "--type", "mlflow_model")
    client = MlflowClient()
    version = client.get_model_version("uploaded-m", "1")
    assert version.source.startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    uri = client.get_model_version_download_uri("uploaded-m", "1")
    assert uri.startswith("http://127.0.0.1:") and "/mlflow/model-files/uploaded-m/1/" in uri
    assert list(mlflow.pyfunc.load_model("models:/uploaded-m/1").predict([1])) == [8]
    dl = mlflow.artifacts.download_artifacts("models:/uploaded-m/1/MLmodel", dst_path=str(tmp_path / "dl"))
    assert "python_function" in Path(dl).read_text()
    with pytest.raises(MlflowException):
        mlflow.artifacts.download_artifacts("models:/uploaded-m/1/nope.txt", dst_path=str(tmp_path / "dl2"))
