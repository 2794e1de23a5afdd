"""What a job's sandbox shows: its own folders, its interpreter, and nothing else of the run folder.

The runner stays outside the sandbox (it holds the job token in its own environment, writes
``user_pgids`` and uploads the job's outputs); see ``shoal.compute.sandbox`` for the view itself.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.compute.job_network import JobNetwork
from shoal.compute.sandbox import Sandbox

PRIMITIVES = ("string", "integer", "number", "boolean")
# Variables of the server's environment that name its own folders: meaningless (or a leak) inside.
HOST_ONLY = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR")


def interpreter_prefix(python: str | Path) -> str:
    """The installation an interpreter belongs to (``…/bin/python3`` -> ``…``), symlinks followed."""
    return str(Path(os.path.realpath(python)).parent.parent)


def sandboxed(
    sandbox: Sandbox,
    *,
    run_dir: Path,
    workdir: Path,
    python: str | Path,
    env_cache: Path,
    inputs_spec: dict[str, Any],
    inputs: dict[str, str | None],
    env: dict[str, str],
    network: JobNetwork | None = None,
) -> Callable[[list[str]], list[str]]:
    """Prepare the job's folders for ``sandbox`` and return how to wrap a rank's argv.

    ``env`` (the command's environment) gets its own ``HOME`` and ``/tmp`` in the run folder, and
    loses the server's XDG folders and the loader's variables (set inside the sandbox instead)."""
    home, tmp = run_dir / "home", run_dir / "tmp"
    for folder in (home, tmp):
        folder.mkdir(exist_ok=True)
    writable = [workdir, run_dir / "outputs", run_dir / "pyenv", home, tmp]
    readable = [interpreter_prefix(python), os.path.realpath(sys.base_prefix), os.path.realpath(env_cache)]
    for name, value in inputs.items():
        spec = inputs_spec.get(name) or {}
        if value is None or spec.get("type") in PRIMITIVES or (spec.get("mode") or "ro_mount") == "direct":
            continue
        local = Path(value)
        folder = local if local.is_dir() else local.parent
        # Azure ML's rw_mount and download give a writable copy; the mounts are read-only.
        (writable if spec.get("mode") in ("rw_mount", "download") else readable).append(folder)
    writable = [p for p in writable if Path(p).exists()]
    readable = [str(p) for p in readable if Path(p).exists()]
    sandbox.give(writable)
    for var in HOST_ONLY:
        env.pop(var, None)
    env["HOME"] = str(home)
    # LD_PRELOAD and the like would act on bwrap itself, outside the sandbox: set inside only.
    setenv = sandbox.move_loader_variables(env)
    prefix: list[str] = []
    if network is not None:  # the job's own namespace: the server is on its loopback
        prefix = network.enter()
        if env.get("MLFLOW_TRACKING_URI"):
            env["MLFLOW_TRACKING_URI"] = on_loopback(env["MLFLOW_TRACKING_URI"])

    def wrap(argv: list[str]) -> list[str]:
        inner = sandbox.argv(argv, cwd=workdir, writable=writable, readable=readable, tmp=tmp, setenv=setenv)
        return prefix + inner

    return wrap


def on_loopback(url: str) -> str:
    """``url`` with its host replaced by ``127.0.0.1`` (its port kept): where the job's network
    relay listens (compute/job_network.py)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def server_address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
