"""Git provenance collected on the client (``shoal.client.git_info``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.client import git_info
from shoal.client.git_info import add_git_properties, git_properties, source_folder, strip_credentials

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def make_repo(folder: Path, *, dirty: bool = True) -> str:
    """A repository with one commit on ``main``, an origin with credentials, maybe a dirty file."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout.strip()

    folder.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "T")
    git("config", "commit.gpgsign", "false")
    (folder / "train.py").write_text("print('hi')\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    git("remote", "add", "origin", "https://user:secret@example.com/r.git")
    if dirty:
        (folder / "train.py").write_text("print('changed')\n")
    return git("rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (git_info.DISABLE_ENV, *git_info.ENV_OVERRIDES.values()):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@host/r.git", "https://host/r.git"),
        ("https://token@host/r.git", "https://host/r.git"),
        ("https://host/r.git", "https://host/r.git"),
        ("ssh://git@host/r.git", "ssh://host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/repos/r.git", "/srv/repos/r.git"),
    ],
)
def test_credentials_are_stripped(url, expected):
    assert strip_credentials(url) == expected


@needs_git
def test_a_repository_records_commit_branch_stripped_url_and_dirty(tmp_path):
    commit = make_repo(tmp_path / "repo")
    props = git_properties(tmp_path / "repo")
    assert props == {
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "https://example.com/r.git",
        "azureml.git.dirty": "True",
    }
    assert "secret" not in str(props)


@needs_git
def test_a_clean_repository_and_a_subfolder(tmp_path):
    make_repo(tmp_path / "repo", dirty=False)
    (tmp_path / "repo" / "src").mkdir()
    props = git_properties(tmp_path / "repo" / "src")
    assert props["azureml.git.dirty"] == "False"
    assert props["mlflow.source.git.branch"] == "main"


def test_outside_a_repository_nothing_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_properties(tmp_path) == {}


def test_without_git_nothing_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert git_properties(tmp_path) == {}


@needs_git
def test_disabled_by_the_environment(tmp_path, monkeypatch):
    make_repo(tmp_path / "repo")
    monkeypatch.setenv("SHOAL_DISABLE_GIT_INFO", "1")
    assert git_properties(tmp_path / "repo") == {}


def test_azure_variables_override(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("AZUREML_GIT_COMMIT", " abc123 ")
    monkeypatch.setenv("AZUREML_GIT_DIRTY", "true")
    monkeypatch.setenv("AZUREML_GIT_REPOSITORY_URI", "https://u:p@ci.example/r.git")
    assert git_properties(tmp_path) == {
        "mlflow.source.git.commit": "abc123",
        "azureml.git.dirty": "True",
        "mlflow.source.git.repoURL": "https://ci.example/r.git",
    }


@needs_git
def test_the_user_s_properties_win_and_pipelines_use_a_step_s_code(tmp_path, monkeypatch):
    commit = make_repo(tmp_path / "repo")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(outside)
    body = {
        "type": "pipeline",
        "properties": {"mlflow.source.git.branch": "mine"},
        "jobs": {"a": {"type": "command", "code": str(tmp_path / "repo")}},
    }
    assert source_folder(body) == tmp_path / "repo"
    out = add_git_properties(body)["properties"]
    assert out["mlflow.source.git.branch"] == "mine"
    assert out["mlflow.source.git.commit"] == commit
    assert add_git_properties({"type": "command", "command": "echo"}) == {"type": "command", "command": "echo"}
