"""The azureml-examples ``sdk/python`` notebooks that can run offline on a CPU run on Shoal, as
scripts made by ``scripts/convert_notebook.py`` (only the mechanical edits of issue #16).

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository with its ``sdk/python`` folder. That folder is copied once (notebooks read files of
their neighbours, e.g. the schedules notebook a pipeline of ``jobs/pipelines``); each notebook is
converted there and run from its own folder against one workspace (a ``cpu-cluster`` compute
exists, as the examples' setup creates it, with a ``gpu-cluster`` record and an attached
``spark-pool``); then every job the script submitted must end ``Completed``. A notebook that
needs what Shoal cannot do offline (``CANNOT_RUN``) must instead end with the Shoal error that
says so. The scikit-learn and LightGBM notebooks build curated environments with uv
(several hundred MB into uv's cache once).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.convert_notebook import convert_notebook, convert_sources
from tests.e2e.conftest import ROOT as REPO
from tests.e2e.conftest import Cli

EXAMPLES = os.environ.get("SHOAL_AZUREML_EXAMPLES")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not EXAMPLES, reason="SHOAL_AZUREML_EXAMPLES is not set"),
    # A notebook waits for its script (up to 30 min) and then for its jobs (up to 30 min more):
    # under load its jobs queue behind an earlier notebook's sweep trials on the shared cluster.
    pytest.mark.timeout(3900),
]

SDK = Path(EXAMPLES or ".") / "sdk" / "python"
NOTEBOOKS = [
    "assets/component/component.ipynb",
    "assets/data/data.ipynb",
    "assets/environment/environment.ipynb",
    "assets/model/model.ipynb",
    "resources/compute/compute.ipynb",
    "resources/workspace/workspace.ipynb",
    "resources/datastores/datastore.ipynb",
    "jobs/single-step/scikit-learn/train-hyperparameter-tune-deploy-with-sklearn/train-hyperparameter-tune-with-sklearn.ipynb",
    "jobs/single-step/lightgbm/iris/lightgbm-iris-sweep.ipynb",
    "jobs/pipelines/1a_pipeline_with_components_from_yaml/pipeline_with_components_from_yaml.ipynb",
    "jobs/pipelines/1b_pipeline_with_python_function_components/pipeline_with_python_function_components.ipynb",
    "jobs/pipelines/1c_pipeline_with_hyperparameter_sweep/pipeline_with_hyperparameter_sweep.ipynb",
    "jobs/pipelines/1d_pipeline_with_non_python_components/pipeline_with_non_python_components.ipynb",
    "jobs/pipelines/1e_pipeline_with_registered_components/pipeline_with_registered_components.ipynb",
    "jobs/pipelines/1g_pipeline_with_parallel_nodes/pipeline_with_parallel_nodes.ipynb",
    "jobs/pipelines/1h_automl_in_pipeline/automl-classification-bankmarketing-in-pipeline/automl-classification-bankmarketing-in-pipeline.ipynb",
    "jobs/pipelines/1i_pipeline_with_spark_nodes/pipeline_with_spark_nodes.ipynb",
    "jobs/pipelines/1j_pipeline_with_pipeline_component/pipeline_with_train_eval_pipeline_component/pipeline_with_train_eval_pipeline_component.ipynb",
    "schedules/job-schedule.ipynb",
]
ENDED = ("Completed", "Failed", "Canceled")
# What these notebooks need that Shoal cannot do offline. Each must fail with a Shoal error (the
# script's last line is a ``shoal`` exception whose message holds this text), never with a
# traceback that ends inside Shoal; the jobs it started may have failed.
SKLEARN = "jobs/single-step/scikit-learn/train-hyperparameter-tune-deploy-with-sklearn"
CANNOT_RUN = {
    # python=3.8 with scikit-learn 0.24.2 and scipy 1.7.1: no wheels for the host's Python, and this
    # machine cannot download another Python, so every trial fails to build its environment.
    f"{SKLEARN}/train-hyperparameter-tune-with-sklearn.ipynb": "could not be built",
    # Its R component's environment is a Docker context.
    "jobs/pipelines/1d_pipeline_with_non_python_components/pipeline_with_non_python_components.ipynb": (
        "Shoal runs jobs without Docker"
    ),
    # Its file-data parallel step runs (tests/e2e/test_sdk_notebooks.py runs one too); the tabular
    # one's environment pins python=3.8, scikit-learn 0.23.2 and azureml-core, which cannot be built.
    "jobs/pipelines/1g_pipeline_with_parallel_nodes/pipeline_with_parallel_nodes.ipynb": "could not be built",
    # Reads its local MLTable (shoal.mltable), creates the connections, then imports from Snowflake.
    "assets/data/data.ipynb": "Shoal does not run data imports",
    "jobs/pipelines/1h_automl_in_pipeline/automl-classification-bankmarketing-in-pipeline/"
    "automl-classification-bankmarketing-in-pipeline.ipynb": "Shoal does not run AutoML",
}
ERROR_LINE = re.compile(r"^shoal\.[\w.]*(Error|Exception): ", re.MULTILINE)


def _cases() -> list:
    return [pytest.param(n, id=Path(n).stem) for n in NOTEBOOKS]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("notebooks-home")
    runner = Cli(home)
    # Their conda files pin Pythons this machine cannot download (python=3.8, 3.10): run them on
    # the server's Python, as the error for a missing interpreter suggests.
    runner.env["SHOAL_PYTHON_MISMATCH"] = "host"
    if os.environ.get("SHOAL_ENV_CACHE"):  # built environments shared between runs
        runner.env["SHOAL_ENV_CACHE"] = os.environ["SHOAL_ENV_CACHE"]
    runner("server", "start", "--detach")
    spec = home / "cpu-cluster.yml"
    spec.write_text("name: cpu-cluster\ntype: amlcompute\nsize: STANDARD_DS3_v2\nmax_instances: 4\n")
    runner("compute", "create", "-f", str(spec))
    # The other computes the examples' setup makes or a user attaches: records only, jobs run here.
    gpu = home / "gpu-cluster.yml"
    gpu.write_text("name: gpu-cluster\ntype: amlcompute\nsize: STANDARD_NC6s_v3\nmax_instances: 2\n")
    runner("compute", "create", "-f", str(gpu))
    pool = home / "spark-pool.yml"
    pool.write_text(
        "name: spark-pool\ntype: synapsespark\nresource_id: /subscriptions/00000000-0000-0000-0000-000000000000/"
        "resourceGroups/shoal/providers/Microsoft.Synapse/workspaces/synapse/bigDataPools/pool\n"
    )
    runner("compute", "create", "-f", str(pool))
    try:
        yield runner
    finally:
        runner("server", "stop", check=False)


def job_names(runner: Cli) -> dict[str, str]:
    listed = json.loads(runner("job", "list", "--all-results", "-o", "json").out or "[]")
    return {j["name"]: j.get("status", "") for j in listed}


@pytest.fixture(scope="module")
def sdk_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("sdk") / "python"
    shutil.copytree(SDK, copy)
    return copy


@pytest.mark.parametrize("notebook", _cases())
def test_notebook_runs_on_shoal(workspace: Cli, sdk_copy: Path, notebook: str) -> None:
    source = sdk_copy / notebook
    if not source.is_file():
        pytest.skip(f"{notebook} is not in this checkout")
    folder = source.parent
    script = folder / f"{source.stem}.shoal.py"
    script.write_text(convert_notebook(source))
    convert_sources(folder)  # component files import mldesigner / azure.ai.ml too
    before = set(job_names(workspace))
    env = {**workspace.env, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, script.name], cwd=folder, env=env, capture_output=True, text=True, timeout=1800
    )
    if notebook in CANNOT_RUN:
        # The exception that ended the script is Shoal's (its message may span lines: a build log).
        raised = list(ERROR_LINE.finditer(proc.stderr))
        message = proc.stderr[raised[-1].start() :] if raised else ""
        assert proc.returncode != 0 and CANNOT_RUN[notebook] in message, (
            f"{notebook} should fail with a Shoal error naming {CANNOT_RUN[notebook]!r}:\n{proc.stderr[-5000:]}"
        )
        return
    assert proc.returncode == 0, f"{notebook} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    deadline = time.monotonic() + 1800
    while True:
        new = {n: s for n, s in job_names(workspace).items() if n not in before}
        if all(s in ENDED for s in new.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(s == "Completed" for s in new.values()), f"{notebook}: jobs did not complete: {new}"
