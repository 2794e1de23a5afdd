"""Command jobs through the SDK, environments built with uv, and every kind of input."""

from __future__ import annotations

import http.server
import io
import json
import threading
from pathlib import Path

import pytest

from shoal import Input, MLClient, Output, command
from shoal.config import ShoalSettings
from shoal.entities import Data, Environment
from tests.e2e.conftest import wait_for, write_job


@pytest.fixture(scope="module")
def ml(jobs_cli):
    client = MLClient(settings=ShoalSettings(home=jobs_cli.home))
    yield client
    client.close()


def test_sdk_command_job_round_trip(ml, jobs_cli, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import sys\nprint('lr is', sys.argv[1])\nopen(sys.argv[2] + '/w.txt', 'w').write('w')\n"
    )
    conda = {"name": "tiny", "dependencies": ["python=3.11", "pip", {"pip": ["six==1.16.0"]}]}
    ml.environments.create_or_update(Environment(name="tiny-env", image="python:3.11", conda_file=conda))
    monkeypatch.chdir(tmp_path)
    job = ml.jobs.create_or_update(
        command(
            code="./src",
            command="python -c 'import six' && python train.py ${{inputs.lr}} ${{outputs.model}}",
            inputs={"lr": 0.1},
            outputs={"model": Output(type="uri_folder")},
            environment="azureml:tiny-env@latest",
            display_name="sdk-job",
        )
    )
    assert job.status in ("Queued", "Preparing", "Running") and job.display_name == "sdk-job"
    assert job.experiment_name == tmp_path.name  # Azure ML's default: the submitting folder's name
    buffer = io.StringIO()
    done = ml.jobs.stream(job.name, out=buffer)
    assert done.status == "Completed", buffer.getvalue()
    assert "lr is 0.1" in buffer.getvalue() and "Execution Summary" in buffer.getvalue()
    assert job.name in [j.name for j in ml.jobs.list(max_results=10)]
    root = ml.jobs.download(job.name, download_path=tmp_path / "dl", all=True)
    assert (root / "named-outputs" / "model" / "w.txt").read_text() == "w"
    log = (root / "artifacts" / "system_logs" / "environment_build.txt").read_text()
    assert "six" in log


def test_a_spec_that_cannot_be_built_fails_in_preparing_with_the_resolver_message(ml, jobs_cli, tmp_path):
    conda = {"dependencies": ["python=3.11", {"pip": ["six==999.0.0"]}]}
    job = ml.jobs.create_or_update(
        command(command="echo never", environment=Environment(image="python:3.11", conda_file=conda))
    )
    done = wait_for(jobs_cli, job.name, timeout=120)
    assert done["status"] == "Failed" and done["error"]["code"] == "ENVIRONMENT_BUILD_FAILED"
    assert "Preparing" in done["properties"]["shoal.status_time.Preparing"] or done["properties"].get(
        "shoal.status_time.Preparing"
    )
    assert "shoal.status_time.Running" not in done["properties"]
    data, _ = ml.jobs.read_log(job.name, "system_logs/environment_build.txt")
    assert b"six" in data and b"999" in data


def test_jobs_asking_for_the_same_new_environment_build_it_once(ml, jobs_cli):
    conda = {"dependencies": ["python=3.11", {"pip": ["iniconfig==2.0.0"]}]}
    env = Environment(image="python:3.11", conda_file=conda)
    names = [
        ml.jobs.create_or_update(command(command="python -c 'import iniconfig'", environment=env)).name
        for _ in range(3)
    ]
    assert [wait_for(jobs_cli, n, timeout=120)["status"] for n in names] == ["Completed"] * 3
    built = [p for p in (jobs_cli.home / "envs").iterdir() if p.is_dir() and (p / "build.log").exists()]
    logs = [p for p in built if "iniconfig" in (p / "build.log").read_text()]
    assert len(logs) == 1, logs


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass


def test_inputs_of_every_kind(ml, jobs_cli, tmp_path):
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "MLTable").write_text("paths:\n  - file: ./rows.csv\n")
    (folder / "rows.csv").write_text("x\n1\n")
    (tmp_path / "served.csv").write_text("a\n42\n")
    ml.data.create_or_update(Data(name="rows", version="1", type="mltable", path=str(folder)))
    handler = lambda *a, **k: _Files(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.csv"
        job = ml.jobs.create_or_update(
            command(
                command=(
                    "cat ${{inputs.table}}/rows.csv && cat ${{inputs.web}} && echo direct=${{inputs.raw}} "
                    "&& echo flag=${{inputs.flag}} n=${{inputs.n}} $[[opt=${{inputs.maybe}}]] end "
                    "&& (touch ${{inputs.table}}/new 2>/dev/null && echo writable || echo read-only)"
                ),
                inputs={
                    "table": Input(type="mltable", path="azureml:rows:1"),
                    "web": Input(type="uri_file", path=url, mode="download"),
                    "raw": Input(
                        type="uri_folder", path="azureml://datastores/workspaceblobstore/paths/x/", mode="direct"
                    ),
                    "flag": True,
                    "n": 3,
                    "maybe": Input(type="string", optional=True),
                },
                environment={"image": "python:3.11"},
            )
        )
        buffer = io.StringIO()
        done = ml.jobs.stream(job.name, out=buffer, raise_on_failure=False)
    finally:
        server.shutdown()
    text = buffer.getvalue()
    assert done.status == "Completed", text
    assert "x\n1" in text and "a\n42" in text
    assert "direct=azureml://datastores/workspaceblobstore/paths/x/" in text
    assert "flag=True n=3 end" in text and "opt=" not in text
    # ro_mount is a read-only copy (root may still write; then the copy is private to the job).
    assert "read-only" in text or "writable" in text


def test_update_archive_restore_through_the_cli(jobs_cli, tmp_path):
    path = write_job(tmp_path, "command: echo hi\nenvironment:\n  image: python:3.11\n")
    name = jobs_cli("job", "create", "--file", str(path), "--query", "name", "-o", "tsv").out.strip()
    refused = jobs_cli("job", "archive", "-n", name, check=False)
    assert refused.code in (0, 1)  # may already be finished on a fast machine
    wait_for(jobs_cli, name)
    out = json.loads(jobs_cli("job", "update", "-n", name, "--set", "tags.reviewed=yes").out)
    assert out["tags"]["reviewed"] == "yes"
    jobs_cli("job", "archive", "-n", name)
    listed = json.loads(jobs_cli("job", "list", "--all-results").out)
    assert name not in [j["name"] for j in listed]
    assert name in [j["name"] for j in json.loads(jobs_cli("job", "list", "--include-archived", "--all-results").out)]
    jobs_cli("job", "restore", "-n", name)
    assert name in [j["name"] for j in json.loads(jobs_cli("job", "list", "--all-results").out)]


def test_cancel_of_a_queued_job_is_immediate(ml, jobs_cli):
    ml.compute.begin_create_or_update(__import__("shoal").AmlCompute(name="busy", max_instances=1)).result()
    blocker = ml.jobs.create_or_update(
        command(command="sleep 20", environment={"image": "python:3.11"}, compute="busy")
    )
    waiting = ml.jobs.create_or_update(command(command="echo no", environment={"image": "python:3.11"}, compute="busy"))
    wait_for(jobs_cli, blocker.name, ("Running",))
    assert ml.jobs.get(waiting.name).status == "Queued"
    assert ml.jobs.begin_cancel(waiting.name).result().status == "Canceled"
    ml.jobs.begin_cancel(blocker.name)
    assert wait_for(jobs_cli, blocker.name)["status"] == "Canceled"
    assert Path(jobs_cli.home).exists()
