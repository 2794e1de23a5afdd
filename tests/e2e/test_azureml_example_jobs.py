"""The command jobs of Azure/azureml-examples' cli/jobs/basics run unchanged, through the
repository's own cli/run-job.sh with `az ml` replaced by `shoal`.

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository: ``git archive HEAD cli/jobs cli/assets cli/resources cli/run-job.sh | tar -x -C /tmp/aml``.
The sklearn-1.5 jobs build the curated environment with uv (about 700 MB into uv's cache once).

The MLflow examples (``hello-mlflow``, ``single-step/scikit-learn/{iris,diabetes}``) are checked
for what they log on Azure ML: their params, metrics and artifacts, and the model that
``mlflow.autolog()`` saves. Their YAML files stay as they are; the sklearn jobs read web data this
machine may not reach, so the test serves it from the workspace's blob datastore and rewrites only
the input path with ``--set inputs.<name>.path=…``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli, wait_for

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")
pytestmark = pytest.mark.skipif(not ROOT, reason="SHOAL_AZUREML_EXAMPLES is not set")

HOST_PYTHON_JOBS = [
    "hello-world",
    "hello-world-env-var",
    "hello-world-input",
    "hello-world-org",
    "hello-world-output",
    "hello-world-output-data",
    "hello-code",
]
DATA_JOBS = ["hello-iris-datastore-file", "hello-data-uri-folder", "hello-model-as-input", "hello-model-as-output"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("aml-home")
    cli_dir = Path(ROOT or ".") / "cli"
    script = home / "run-job-shoal.sh"
    script.write_text((cli_dir / "run-job.sh").read_text().replace("az ml", "shoal"))
    runner = Cli(home)
    runner.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{runner.env.get('PATH', '')}"
    runner("server", "start", "--detach")
    try:
        yield runner, cli_dir, script
    finally:
        runner("server", "stop", check=False)


def run_job(examples, job: str) -> subprocess.CompletedProcess[str]:
    runner, cli_dir, script = examples
    return subprocess.run(
        ["bash", str(script), f"jobs/basics/{job}.yml"],
        cwd=cli_dir,
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("job", HOST_PYTHON_JOBS)
def test_basic_jobs_complete_through_run_job_sh(examples, job):
    result = run_job(examples, job)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Job completed" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("job", DATA_JOBS)
def test_data_jobs_complete_once_their_data_exists(examples, job):
    runner, cli_dir, _ = examples
    # The data these jobs read, placed where the examples expect it.
    server = json.loads((runner.home / "server.json").read_text())["url"]
    token = (runner.home / "token").read_text().strip()
    httpx.put(
        f"{server}/api/v1/workspaces/default/datastores/workspaceblobstore/content",
        params={"path": "example-data/iris.csv"},
        content=(cli_dir / "assets/data/example-data/iris.csv").read_bytes(),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/octet-stream"},
    ).raise_for_status()
    runner(
        "data",
        "create",
        "--name",
        "local-folder-example",
        "--path",
        str(cli_dir / "assets/data/sample-data"),
        "--type",
        "uri_folder",
    )
    result = run_job(examples, job)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


# -- MLflow examples -------------------------------------------------------------------------


def _put(runner: Cli, path: str, content: bytes) -> None:
    """A file in the workspace's blob datastore, where the rewritten input paths point."""
    server = json.loads((runner.home / "server.json").read_text())["url"]
    token = (runner.home / "token").read_text().strip()
    httpx.put(
        f"{server}/api/v1/workspaces/default/datastores/workspaceblobstore/content",
        params={"path": path},
        content=content,
        headers={"Authorization": f"Bearer {token}", "content-type": "application/octet-stream"},
    ).raise_for_status()


def _mlflow_client(runner: Cli, monkeypatch: pytest.MonkeyPatch):
    from mlflow.tracking import MlflowClient

    server = json.loads((runner.home / "server.json").read_text())["url"]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", (runner.home / "token").read_text().strip())
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(f"{server}/api/v1/workspaces/default/mlflow")


def _run(examples, yml: str, *sets: str, timeout: float = 900) -> dict:
    runner, cli_dir, _ = examples
    args = ["job", "create", "--file", yml, "--query", "name", "-o", "tsv"]
    for item in sets:
        args += ["--set", item]
    name = runner(*args, cwd=cli_dir).out.strip()
    job = wait_for(runner, name, timeout=timeout)
    logs = runner("job", "stream", "-n", name, check=False).out
    assert job["status"] == "Completed", logs[-3000:]
    return job


@pytest.mark.slow
def test_hello_mlflow_logs_its_param_metric_and_artifact(examples, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    runner = examples[0]
    job = _run(examples, "jobs/basics/hello-mlflow.yml")
    assert job["params"] == {"hello_param": "world"}
    assert 0 <= job["metrics"]["hello_metric"] < 1
    client = _mlflow_client(runner, monkeypatch)
    assert "helloworld.txt" in [f.path for f in client.list_artifacts(job["name"])]
    local = client.download_artifacts(job["name"], "helloworld.txt", str(tmp_path))
    assert Path(local).read_text() == "hello world\n"


def _diabetes_csv() -> bytes:
    """A stand-in for azuremlexamples' diabetes.csv (sklearn's diabetes columns, a numeric target)."""
    rng = random.Random(0)
    cols = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    lines = [",".join([*cols, "target"])]
    for _ in range(200):
        x = [round(rng.uniform(-0.1, 0.1), 5) for _ in cols]
        lines.append(",".join(map(str, [*x, round(150 + 300 * x[2] + 200 * x[3] + rng.gauss(0, 10), 2)])))
    return ("\n".join(lines) + "\n").encode()


SKLEARN_JOBS = {
    "iris": {
        "input": "iris_csv",
        "data": "jobs/pipelines/add-column-and-word-count-using-spark/data/iris.csv",
        "params": {
            "C": "0.8",
            "kernel": "rbf",
            "coef0": "0.1",
            **dict.fromkeys(
                ["break_ties", "cache_size", "class_weight", "decision_function_shape", "degree", "gamma"], None
            ),
            **dict.fromkeys(["max_iter", "probability", "random_state", "shrinking", "tol", "verbose"], None),
        },
        "metrics": [
            "training_accuracy_score",
            "training_f1_score",
            "training_precision_score",
            "training_recall_score",
            "training_score",
        ],
        "estimator": "SVC",
    },
    "diabetes": {
        "input": "diabetes_csv",
        "data": None,
        "params": {"fit_intercept": "True", "positive": "False", "copy_X": None, "n_jobs": None},
        "metrics": [
            "training_mean_absolute_error",
            "training_mean_squared_error",
            "training_r2_score",
            "training_root_mean_squared_error",
            "training_score",
        ],
        "estimator": "LinearRegression",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(SKLEARN_JOBS))
def test_sklearn_autolog_jobs_log_params_metrics_and_model(examples, example, monkeypatch):
    pytest.importorskip("mlflow")
    runner, cli_dir, _ = examples
    spec = SKLEARN_JOBS[example]
    yml = f"jobs/single-step/scikit-learn/{example}/job.yml"
    if spec["data"] is None:
        data = _diabetes_csv()
    else:
        source = cli_dir / spec["data"]
        if not source.exists():
            pytest.skip(f"{source} is not in this checkout")
        data = source.read_bytes()
    _put(runner, f"example-data/{example}.csv", data)
    # The jobs name `compute: azureml:cpu-cluster`; the example's own minimal cluster YAML, renamed.
    runner(
        "compute", "create", "--file", "resources/compute/cluster-minimal.yml", "--set", "name=cpu-cluster", cwd=cli_dir
    )
    path = f"azureml://datastores/workspaceblobstore/paths/example-data/{example}.csv"
    job = _run(examples, yml, f"inputs.{spec['input']}.path={path}")

    assert job["experiment_name"] == f"sklearn-{example}-example"
    assert set(job["params"]) == set(spec["params"])
    for key, value in spec["params"].items():
        if value is not None:
            assert job["params"][key] == value, key
    training = sorted(k for k in job["metrics"] if k.startswith("training_"))
    assert training == spec["metrics"]
    client = _mlflow_client(runner, monkeypatch)
    run = client.get_run(job["name"])
    assert run.data.tags["estimator_name"] == spec["estimator"] and run.data.tags["mlflow.autologging"] == "sklearn"
    assert run.info.status == "FINISHED"

    # The model autolog saved: an MLflow 3 logged model of the job's run, with the sklearn flavor,
    # that registers as a Shoal model from the job's artifacts (as Azure ML users do).
    models = [
        m
        for m in client.search_logged_models(experiment_ids=[run.info.experiment_id])
        if m.source_run_id == job["name"]
    ]
    assert [m.name for m in models] == ["model"]
    files = {f.path for f in client.list_logged_model_artifacts(models[0].model_id)}
    assert {"MLmodel", "model.pkl", "requirements.txt"} <= files
    assert {m.key for m in models[0].metrics} >= set(spec["metrics"])
    created = json.loads(
        runner(
            "model",
            "create",
            "--name",
            f"sklearn-{example}",
            "--path",
            f"azureml://jobs/{job['name']}/outputs/artifacts/paths/model/",
            "--type",
            "mlflow_model",
        ).out
    )
    assert "sklearn" in created["flavors"] and created["job_name"] == job["name"]
