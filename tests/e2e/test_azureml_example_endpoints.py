"""The online-endpoint flow of Azure/azureml-examples' cli/deploy-safe-rollout-online-endpoints.sh
with `az ml` replaced by `shoal`, on the repository's own YAML, model and score.py files.

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository (``git archive HEAD cli/endpoints | tar -x -C /tmp/aml``). The deployments' conda file
(numpy, scikit-learn, scipy, joblib, azureml-inference-server-http) is built once with uv; it pins
python=3.12, so the server runs with SHOAL_PYTHON_MISMATCH=host where the host has another one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")
pytestmark = [pytest.mark.skipif(not ROOT, reason="SHOAL_AZUREML_EXAMPLES is not set"), pytest.mark.slow]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("aml-endpoints-home")
    runner = Cli(home)
    runner.env["SHOAL_PYTHON_MISMATCH"] = "host"
    runner("server", "start", "--detach")
    try:
        yield runner, Path(ROOT or ".") / "cli"
    finally:
        runner("server", "stop", check=False)


def test_safe_rollout_script_flow(examples) -> None:
    cli, root = examples
    ep = "endpt-sr-shoal"
    sample = root / "endpoints/online/managed/sample"
    cli("online-endpoint", "create", "--name", ep, "-f", str(sample / "endpoint.yml"))
    cli(
        "online-deployment", "create", "--name", "blue", "--endpoint-name", ep,
        "-f", str(sample / "blue-deployment.yml"), "--all-traffic",
    )  # fmt: skip
    request = root / "endpoints/online/model-1/sample-request.json"
    first = json.loads(cli("online-endpoint", "invoke", "--name", ep, "--request-file", str(request)).out)
    assert len(first) == 2 and all(isinstance(x, float) for x in first)
    cli("online-deployment", "update", "--name", "blue", "--endpoint-name", ep, "--set", "instance_count=2")
    cli(
        "online-deployment", "create", "--name", "green", "--endpoint-name", ep,
        "-f", str(sample / "green-deployment.yml"),
    )  # fmt: skip
    assert json.loads(cli("online-endpoint", "show", "-n", ep, "--query", "traffic").out) == {"blue": 100, "green": 0}
    request2 = root / "endpoints/online/model-2/sample-request.json"
    cli("online-endpoint", "invoke", "--name", ep, "--deployment-name", "green", "--request-file", str(request2))
    key = cli("online-endpoint", "get-credentials", "-n", ep, "-o", "tsv", "--query", "primaryKey").out.strip()
    uri = cli("online-endpoint", "show", "-n", ep, "-o", "tsv", "--query", "scoring_uri").out.strip()
    answer = httpx.post(
        uri,
        content=request2.read_bytes(),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "azureml-model-deployment": "green",
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    cli("online-endpoint", "update", "--name", ep, "--mirror-traffic", "green=10")
    cli("online-endpoint", "update", "--name", ep, "--mirror-traffic", "green=0")
    cli("online-endpoint", "update", "--name", ep, "--traffic", "blue=90 green=10")
    cli("online-endpoint", "update", "--name", ep, "--traffic", "blue=0 green=100")
    cli("online-deployment", "delete", "--name", "blue", "--endpoint", ep, "--yes", "--no-wait")
    cli("online-endpoint", "delete", "--name", ep, "--yes", "--no-wait")


def test_hello_batch_pipeline_deployment(examples) -> None:
    """endpoints/batch/deploy-pipelines/hello-batch/deploy-and-run.sh, up to the deployment from a
    job (``job_definition``, not supported yet). Its component's environment is the curated
    sklearn-1.5 one (built once with uv)."""
    cli, root = examples
    here = root / "endpoints/batch/deploy-pipelines/hello-batch"
    cli("component", "create", "-f", str(here / "hello-component/hello.yml"))
    cli(
        "compute",
        "create",
        "-n",
        "batch-cluster",
        "--type",
        "amlcompute",
        "--min-instances",
        "0",
        "--max-instances",
        "5",
    )
    cli("batch-endpoint", "create", "--name", "hello-batch", "-f", str(here / "endpoint.yml"))
    cli("batch-endpoint", "show", "--name", "hello-batch")
    cli("batch-deployment", "create", "--endpoint", "hello-batch", "-f", str(here / "deployment.yml"), "--set-default")
    job = cli("batch-endpoint", "invoke", "-n", "hello-batch", "--query", "name", "-o", "tsv").out.strip()
    cli("job", "stream", "-n", job)
    assert json.loads(cli("job", "show", "-n", job).out)["status"] == "Completed"
    cli("batch-endpoint", "delete", "-n", "hello-batch", "--yes")
