"""A job submitted from a git repository records where its code came from, as job properties
and (through the real MLflow client) as run tags; from elsewhere it records nothing."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from shoal import MLClient, command
from shoal.client import git_info
from shoal.config import ShoalSettings
from tests.e2e.conftest import ROOT, write_job
from tests.unit.test_git_info import make_repo

mlflow = pytest.importorskip("mlflow")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")]
# The CLI runs outside the checkout (cwd): it must still import this checkout's shoal.
SRC = {"PYTHONPATH": str(ROOT / "src")}
KEYS = ("mlflow.source.git.commit", "mlflow.source.git.branch", "mlflow.source.git.repoURL", "azureml.git.dirty")


def wait_ended(home, *names: str, timeout: float = 120) -> None:
    """Let the jobs finish before the server stops, so no runner is left retrying its report."""
    deadline = time.monotonic() + timeout
    with MLClient(settings=ShoalSettings(home=home)) as ml:
        for name in names:
            while ml.jobs.get(name).status not in ("Completed", "Failed", "Canceled"):
                assert time.monotonic() < deadline, f"job {name} did not end"
                time.sleep(0.2)


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (git_info.DISABLE_ENV, *git_info.ENV_OVERRIDES.values()):
        monkeypatch.delenv(var, raising=False)


def test_sdk_job_from_a_repository_records_git_properties_and_run_tags(mlflow_env, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    commit = make_repo(repo)
    monkeypatch.chdir(repo)
    with MLClient(settings=ShoalSettings(home=mlflow_env.home)) as ml:
        job = ml.jobs.create_or_update(
            command(code=".", command="python train.py", environment={"image": "python:3.11"}),
        )
    expected = {
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "https://example.com/r.git",
        "azureml.git.dirty": "True",
    }
    assert {k: job.properties.get(k) for k in KEYS} == expected
    tags = mlflow.get_run(job.name).data.tags
    assert {k: tags.get(k) for k in KEYS} == expected
    found = mlflow.search_runs(experiment_names=[job.experiment_name], output_format="list")
    assert [r.data.tags.get("mlflow.source.git.commit") for r in found if r.info.run_id == job.name] == [commit]
    wait_ended(mlflow_env.home, job.name)


def test_cli_job_from_outside_a_repository_records_nothing(mlflow_env, tmp_path):
    folder = tmp_path / "plain"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "train.py").write_text("print('hi')\n")
    path = write_job(folder, "code: src\ncommand: python train.py\nenvironment:\n  image: python:3.11\n")
    env = {**SRC, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    created = json.loads(mlflow_env("job", "create", "-f", str(path), "-o", "json", cwd=folder, env=env).out)
    assert not any(k in (created.get("properties") or {}) for k in KEYS)
    assert not any(k in mlflow.get_run(created["name"]).data.tags for k in KEYS)
    wait_ended(mlflow_env.home, created["name"])


def test_cli_job_from_a_repository_and_the_switch_that_turns_it_off(mlflow_env, tmp_path):
    repo = tmp_path / "repo"
    commit = make_repo(repo, dirty=False)
    path = write_job(repo, "code: .\ncommand: python train.py\nenvironment:\n  image: python:3.11\n")
    created = json.loads(mlflow_env("job", "create", "-f", str(path), "-o", "json", cwd=tmp_path, env=SRC).out)
    props = created["properties"]
    first = created["name"]
    assert props["mlflow.source.git.commit"] == commit
    assert props["azureml.git.dirty"] == "True"  # job.yml is an untracked file
    off = {**SRC, "SHOAL_DISABLE_GIT_INFO": "1"}
    created = json.loads(mlflow_env("job", "create", "-f", str(path), "-o", "json", cwd=repo, env=off).out)
    assert not any(k in (created.get("properties") or {}) for k in KEYS)
    wait_ended(mlflow_env.home, first, created["name"])


def test_a_pipelines_steps_carry_the_pipelines_git_properties(mlflow_env, tmp_path):
    repo = tmp_path / "repo"
    commit = make_repo(repo)
    path = write_job(
        repo,
        """
        type: pipeline
        jobs:
          hello:
            type: command
            code: .
            command: python train.py
            environment:
              image: python:3.11
        """,
        name="pipeline.yml",
    )
    created = json.loads(mlflow_env("job", "create", "-f", str(path), "-o", "json", cwd=repo, env=SRC).out)
    assert created["properties"]["mlflow.source.git.commit"] == commit
    with MLClient(settings=ShoalSettings(home=mlflow_env.home)) as ml:
        (step,) = ml.jobs.list(parent_job_name=created["name"])
    assert {k: step.properties.get(k) for k in KEYS} == {k: created["properties"][k] for k in KEYS}
    assert mlflow.get_run(step.name).data.tags["mlflow.source.git.commit"] == commit
    wait_ended(mlflow_env.home, created["name"])
