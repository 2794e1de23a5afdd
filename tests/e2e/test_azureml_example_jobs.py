"""The command jobs of Azure/azureml-examples' cli/jobs/basics run unchanged, through the
repository's own cli/run-job.sh with `az ml` replaced by `shoal`.

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository: ``git archive HEAD cli/jobs/basics cli/assets cli/run-job.sh | tar -x -C /tmp/aml``.
The sklearn-1.5 jobs build the curated environment with uv (about 700 MB into uv's cache once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli

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
