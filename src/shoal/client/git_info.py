"""Where a job's code came from: the git repository, branch and commit it was submitted from.

As azure-ai-ml does, a job submitted from inside a git repository records, as job properties
(and the server shows them as MLflow run tags):

- ``mlflow.source.git.repoURL``: the ``origin`` URL (``git ls-remote --get-url``), credentials removed;
- ``mlflow.source.git.branch``: ``git symbolic-ref --short HEAD`` (absent on a detached HEAD);
- ``mlflow.source.git.commit``: ``git rev-parse HEAD``;
- ``azureml.git.dirty``: ``"True"`` when ``git status --porcelain`` lists changes, else ``"False"``.

Azure's ``AZUREML_GIT_REPOSITORY_URI`` / ``_BRANCH`` / ``_COMMIT`` / ``_DIRTY`` / ``_BUILD_ID`` /
``_BUILD_URI`` variables override (or add to) what git says, as on a CI runner without a checkout.
``SHOAL_DISABLE_GIT_INFO=1`` records nothing. Without git, or outside a repository, nothing is
recorded and nothing fails.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from shoal.entities.refs import is_local_path, strip_file_prefix

REPO_URL = "mlflow.source.git.repoURL"
BRANCH = "mlflow.source.git.branch"
COMMIT = "mlflow.source.git.commit"
DIRTY = "azureml.git.dirty"
BUILD_ID = "azureml.git.build_id"
BUILD_URI = "azureml.git.build_uri"
KEYS = (REPO_URL, BRANCH, COMMIT, DIRTY, BUILD_ID, BUILD_URI)
DISABLE_ENV = "SHOAL_DISABLE_GIT_INFO"
ENV_OVERRIDES = {
    REPO_URL: "AZUREML_GIT_REPOSITORY_URI",
    BRANCH: "AZUREML_GIT_BRANCH",
    COMMIT: "AZUREML_GIT_COMMIT",
    DIRTY: "AZUREML_GIT_DIRTY",
    BUILD_ID: "AZUREML_GIT_BUILD_ID",
    BUILD_URI: "AZUREML_GIT_BUILD_URI",
}
TIMEOUT_S = 5.0
_CREDENTIALS = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


def strip_credentials(url: str) -> str:
    """``https://user:token@host/r.git`` -> ``https://host/r.git``; ``git@host:r.git`` (an SSH
    user, not a secret) and URLs without credentials stay as they are."""
    return _CREDENTIALS.sub(r"\g<scheme>", url.strip())


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def git_properties(folder: str | Path | None = None) -> dict[str, str]:
    """The git properties of ``folder`` (default: the current folder); empty when disabled,
    without git, or outside a repository (and no ``AZUREML_GIT_*`` variable is set)."""
    if _truthy(os.environ.get(DISABLE_ENV, "")):
        return {}
    where = Path(folder) if folder is not None else Path.cwd()
    if where.is_file():
        where = where.parent
    props: dict[str, str] = {}
    # One `git status` answers all but the remote: the commit, the branch and whether anything
    # changed (it fails outside a work tree, and then nothing is recorded).
    status = _git(where, "status", "--porcelain=v2", "--branch") if where.is_dir() else None
    if status is not None:
        headers = dict(line[2:].split(" ", 1) for line in status.splitlines() if line.startswith("# "))
        url = _git(where, "ls-remote", "--get-url")
        found = {
            # `ls-remote --get-url` without an origin echoes "origin" back: not a URL.
            REPO_URL: url if url not in ("origin", "") else None,
            BRANCH: headers.get("branch.head") if headers.get("branch.head") != "(detached)" else None,
            COMMIT: headers.get("branch.oid") if headers.get("branch.oid") != "(initial)" else None,
        }
        props.update({k: v for k, v in found.items() if v})
        props[DIRTY] = str(any(not line.startswith("# ") for line in status.splitlines()))
    for key, env in ENV_OVERRIDES.items():
        value = (os.environ.get(env) or "").strip()
        if value:
            props[key] = str(_truthy(value)) if key == DIRTY else value
    if REPO_URL in props:
        props[REPO_URL] = strip_credentials(props[REPO_URL])
    return props


def _local_folder(value: Any) -> Path | None:
    if isinstance(value, str) and is_local_path(value):
        path = Path(strip_file_prefix(value)).expanduser()
        return path if path.exists() else None
    return None


def source_folder(body: dict[str, Any]) -> Path | None:
    """The folder a job's code comes from: its ``code``, else (a pipeline, a sweep) the first
    step's or trial's local ``code``; None: the current folder."""
    found = _local_folder(body.get("code"))
    if found is not None:
        return found
    nested: list[Any] = [body.get("trial"), body.get("component")]
    jobs = body.get("jobs")
    if isinstance(jobs, dict):
        nested.extend(jobs.values())
    for node in nested:
        inner = source_folder(node) if isinstance(node, dict) else _local_folder(node)
        if inner is not None:
            return inner
    return None


def add_git_properties(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the git properties added, where the user did not set them."""
    props = git_properties(source_folder(body))
    if props:
        body["properties"] = {**props, **(body.get("properties") or {})}
    return body
