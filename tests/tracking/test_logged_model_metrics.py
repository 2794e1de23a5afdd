"""MLflow 3 logged models: metrics logged with a ``model_id`` show on the model (and stay in the
run's history), search filters on them, and the model's files are listed and served by the
``logged-models/{id}/artifacts`` routes the MLflow UI uses."""

from __future__ import annotations

import json

import httpx
import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("pandas", reason="mlflow.pyfunc needs numpy and pandas (the dev extra installs them)")
from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = pytest.mark.e2e


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _server(cli) -> tuple[str, dict[str, str]]:
    server = json.loads((cli.home / "server.json").read_text())
    url = server.get("url") or f"http://127.0.0.1:{server['port']}"
    token = (cli.home / "token").read_text().strip()
    return f"{url}/api/v1/workspaces/default/mlflow", {"Authorization": f"Bearer {token}"}


def test_metrics_with_a_model_id_show_on_the_logged_model(mlflow_env):
    client = MlflowClient()
    with mlflow.start_run() as run:
        # Logging a model copies the run's metrics of its step (0) to it: this one is at step 5.
        mlflow.log_metric("plain", 1.0, step=5)
        info = mlflow.pyfunc.log_model(name="m", python_model=Echo(), pip_requirements=["mlflow-skinny"])
        mlflow.log_metric("acc", 0.5, step=1, model_id=info.model_id)
        mlflow.log_metric("acc", 0.75, step=2, model_id=info.model_id)
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("f1", 0.6, 1234, 0, model_id=info.model_id, dataset_name="eval", dataset_digest="abc"),
            ],
        )
    model = mlflow.get_logged_model(info.model_id)
    points = sorted((m.key, m.step, m.value) for m in model.metrics)
    assert points == [("acc", 1, 0.5), ("acc", 2, 0.75), ("f1", 0, 0.6)]
    f1 = next(m for m in model.metrics if m.key == "f1")
    assert (f1.dataset_name, f1.dataset_digest, f1.run_id, f1.model_id) == (
        "eval",
        "abc",
        run.info.run_id,
        info.model_id,
    )
    # The run keeps every point in its own history too.
    assert [m.value for m in client.get_metric_history(run.info.run_id, "acc")] == [0.5, 0.75]
    assert client.get_run(run.info.run_id).data.metrics["plain"] == 1.0

    found = client.search_logged_models(experiment_ids=["0"], filter_string="metrics.acc > 0.7")
    assert info.model_id in [m.model_id for m in found]
    assert next(m for m in found if m.model_id == info.model_id).metrics
    assert info.model_id not in [
        m.model_id for m in client.search_logged_models(experiment_ids=["0"], filter_string="metrics.acc > 0.9")
    ]

    # A metric naming a model that does not exist is refused whole.
    with pytest.raises(MlflowException) as err:
        client.log_metric(run.info.run_id, "acc", 1.0, model_id="m-nope")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "acc")] == [0.5, 0.75]


def test_logged_model_files_are_listed_and_served(mlflow_env):
    client = MlflowClient()
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="files", python_model=Echo(), pip_requirements=["mlflow-skinny"])
    listed = {f.path: f.is_dir for f in client.list_logged_model_artifacts(info.model_id)}
    assert listed.get("MLmodel") is False and "requirements.txt" in listed

    base, headers = _server(mlflow_env)
    for prefix in ("api", "ajax-api"):
        reply = httpx.get(
            f"{base}/{prefix}/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories", headers=headers
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["root_uri"] == client.get_logged_model(info.model_id).artifact_location
        assert {f["path"] for f in body["files"]} >= {"MLmodel", "python_env.yaml"}
        reply = httpx.get(
            f"{base}/{prefix}/2.0/mlflow/logged-models/{info.model_id}/artifacts/files",
            params={"artifact_file_path": "MLmodel"},
            headers=headers,
        )
        assert reply.status_code == 200 and b"python_function" in reply.content
    for path, code in (("nope.txt", 404), ("../../../x", 400), ("", 400)):
        reply = httpx.get(
            f"{base}/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/files",
            params={"artifact_file_path": path},
            headers=headers,
        )
        assert reply.status_code == code, (path, reply.text)
    reply = httpx.get(f"{base}/api/2.0/mlflow/logged-models/m-nope/artifacts/directories", headers=headers)
    assert reply.status_code == 404 and reply.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
