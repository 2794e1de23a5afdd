"""A no-code MLflow deployment end to end on one real server: a Shoal job trains a scikit-learn
model and logs it with MLflow (``registered_model_name``), the registered model is deployed with
no ``environment`` and no ``code_configuration`` (the environment comes from the model's
conda.yaml), and the endpoint answers ``input_data`` (split and records) and ``dataframe_split``
as Azure's MLflow deployments do."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli, wait_for, write_job

pytestmark = pytest.mark.e2e

TRAIN = """\
import json
import mlflow, mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True, as_frame=True)
clf = LogisticRegression(max_iter=500).fit(X, y)
mlflow.sklearn.log_model(
    clf, name="model", registered_model_name="iris-clf", signature=infer_signature(X, y),
    serialization_format="cloudpickle",
)
print("TRAINED", json.dumps(clf.predict(X.iloc[[0, 60, 120]]).tolist()))
"""
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [5.0, 2.0, 3.5, 1.0], [7.7, 2.8, 6.7, 2.0]]


def test_no_code_mlflow_deployment(jobs_cli: Cli, tmp_path: Path) -> None:
    cli = jobs_cli
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN)
    job = write_job(
        tmp_path,
        """
        command: python train.py
        code: src
        environment:
          image: python:3.11
          conda_file:
            dependencies:
              - python=3.11
              - pip:
                  - mlflow-skinny
                  - scikit-learn
                  - pandas
        """,
    )
    name = cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(cli, name, timeout=400)
    logs = cli("job", "stream", "-n", name, check=False).out
    assert done["status"] == "Completed", logs
    trained = json.loads(logs.split("TRAINED ", 1)[1].splitlines()[0])
    model = json.loads(cli("model", "show", "-n", "iris-clf", "-v", "1").out)
    assert model["type"] == "mlflow_model" and name in json.dumps(model)  # logged by that job's run

    (tmp_path / "endpoint.yml").write_text("name: iris-ep\nauth_mode: key\n")
    (tmp_path / "blue.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n"
        "name: blue\nendpoint_name: iris-ep\nmodel: azureml:iris-clf:1\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
    )
    cli("online-endpoint", "create", "-f", str(tmp_path / "endpoint.yml"))
    created = cli("online-deployment", "create", "-e", "iris-ep", "-f", str(tmp_path / "blue.yml"), "--all-traffic",
                  check=False)  # fmt: skip
    assert created.code == 0, created.err + cli("online-deployment", "get-logs", "-n", "blue", "-e", "iris-ep").out

    split = {"input_data": {"columns": COLUMNS, "index": [0, 1, 2], "data": ROWS}}
    (tmp_path / "request.json").write_text(json.dumps(split))
    answer = json.loads(
        cli("online-endpoint", "invoke", "-n", "iris-ep", "--request-file", str(tmp_path / "request.json")).out
    )
    assert answer == trained and answer[0] == 0 and answer[2] == 2  # what the job's model predicted

    key = cli("online-endpoint", "get-credentials", "-n", "iris-ep", "--query", "primaryKey", "-o", "tsv").out.strip()
    uri = cli("online-endpoint", "show", "-n", "iris-ep", "--query", "scoring_uri", "-o", "tsv").out.strip()
    headers = {"Authorization": f"Bearer {key}"}
    records = {"input_data": [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]}
    dataframe_split = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    for body in (records, dataframe_split, {"input_data": ROWS}):
        response = httpx.post(uri, json=body, headers=headers, timeout=60)
        assert response.status_code == 200 and response.json() == answer, (body, response.text)
    bad = httpx.post(uri, json={"rows": ROWS}, headers=headers, timeout=60)
    assert bad.status_code >= 400 and "input_data" in bad.text

    # What the instance runs: the environment derived from the model, MLflow as mlflow-skinny.
    shown = json.loads(cli("online-deployment", "show", "-n", "blue", "-e", "iris-ep").out)
    assert shown["provisioning_state"] == "Succeeded" and "code_configuration" not in shown
    assert "MLflow model loaded" in cli("online-deployment", "get-logs", "-n", "blue", "-e", "iris-ep").out


def test_no_code_needs_an_mlflow_model(jobs_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.txt").write_text("1")
    (tmp_path / "d.yml").write_text("name: plain\nendpoint_name: iris-ep\nmodel:\n  path: m\n")
    refused = jobs_cli("online-deployment", "create", "-e", "iris-ep", "-f", str(tmp_path / "d.yml"), check=False,
                       cwd=tmp_path)  # fmt: skip
    assert refused.code != 0 and "mlflow_model" in refused.err and "code_configuration" in refused.err
