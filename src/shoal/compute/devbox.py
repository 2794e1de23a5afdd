"""A compute instance's dev box: a JupyterLab server as a local process (no store, no policy).

JupyterLab comes from the ``devbox`` extra (``pip install 'shoal[devbox]'``) and runs as
``<python> -m jupyterlab`` in its own process group, listening on 127.0.0.1 only, its login token
passed in its environment (never on its command line, which other users can read in ``/proc``).
The instance's folder holds ``jupyter.log`` (written by the server) and ``box/``, the only
folder notebook code may write: ``files/`` (the notebooks, kept across stop and start,
``config.json`` for ``MLClient.from_config()``), ``home/``, ``tmp/``, Jupyter's own config, data
and runtime folders (so the server user's own Jupyter settings never apply). With job isolation on
(``compute/sandbox.py``) it runs in the same sandbox as job code, as the job user when the server
is root: the system and its interpreter read-only, ``box/`` writable, the server's home hidden.
The server never follows a link notebook code could have left in ``box/`` (``write_config``).

The server's services record the pid, port and token in the database (out of the notebook's
reach); this module only starts a server, asks it whether it is alive and idle, and ends it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shoal.compute.sandbox import Sandbox
from shoal.errors import UnsupportedError

SHOAL_PACKAGE = Path(__file__).resolve().parent.parent  # the `shoal` package's folder

EXTRA = "devbox"
LOG_FILE = "jupyter.log"
BOX = "box"
FILES = "files"
CONFIG = "config.json"
# Variables of the server's environment that name its own folders: never passed on.
HOST_ONLY = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR")
# Jupyter looks for its settings in these; each points into the instance's folder.
JUPYTER_DIRS = {"JUPYTER_CONFIG_DIR": "jupyter/config", "JUPYTER_DATA_DIR": "jupyter/data"}


def jupyter_missing() -> str | None:
    """Why JupyterLab cannot start here (None: it can)."""
    if importlib.util.find_spec("jupyterlab") is None:
        return f"JupyterLab is not installed on the Shoal server: pip install 'shoal[{EXTRA}]'"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class JupyterProcess:
    """A started JupyterLab: where it listens and how to sign in."""

    pid: int
    port: int
    token: str
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self) -> str:
        return f"{self.base_url}/lab?token={self.token}"


def start(
    folder: Path,
    env: Mapping[str, str],
    *,
    python: str | None = None,
    sandbox: Sandbox | None = None,
    readable: Sequence[str | Path] = (),
) -> JupyterProcess:
    """Start JupyterLab for the instance whose folder is ``folder``; returns at once (see ``wait_ready``).

    ``env`` is what notebook code finds in its environment (the tracking URI and token, the
    workspace); JupyterLab's own settings are added here."""
    problem = jupyter_missing()
    if problem:
        raise UnsupportedError(problem, details={"extra": EXTRA})
    python = python or sys.executable
    box = folder / BOX
    files, home, tmp = box / FILES, box / "home", box / "tmp"
    for sub in (files, home, tmp, box / "jupyter" / "runtime", *(box / d for d in JUPYTER_DIRS.values())):
        sub.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), new_token()
    argv = [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        # The instance's own folder on the command line also tells its process from any other.
        f"--ServerApp.root_dir={files}",
    ]
    child = {k: v for k, v in env.items() if k not in HOST_ONLY}
    child.update(
        {
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "JUPYTER_TOKEN": token,
            "JUPYTER_RUNTIME_DIR": str(box / "jupyter" / "runtime"),
            "IPYTHONDIR": str(box / "jupyter" / "ipython"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    for var, sub in JUPYTER_DIRS.items():
        child[var] = str(box / sub)
    if sandbox is not None:
        # The notebook kernel imports shoal (MLClient.from_config): show its package where it is,
        # which for an editable install is outside sys.prefix (and under /tmp, which the sandbox
        # replaces with its own).
        shown = [*readable, os.path.realpath(sys.base_prefix), sys.prefix, str(SHOAL_PACKAGE)]
        sandbox.give([box])
        argv = sandbox.argv(
            argv, cwd=files, writable=[box], readable=[str(p) for p in shown if Path(p).exists()], tmp=tmp
        )
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=files,
            env=child,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return JupyterProcess(proc.pid, port, token, folder, proc)


def status(port: int, token: str, timeout: float = 5.0) -> dict[str, object] | None:
    """Jupyter's ``/api/status`` (started, last_activity, kernels, connections); None if it does not answer.
    The status route does not count as activity, so asking never keeps an instance awake."""
    try:
        resp = httpx.get(
            f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"}, timeout=timeout
        )
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def wait_ready(box: JupyterProcess, timeout: float) -> str | None:
    """Wait until JupyterLab answers; None when it does, else why not (with its log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if box.proc is not None and box.proc.poll() is not None:
            return f"JupyterLab exited with code {box.proc.returncode}: {log_tail(box.folder)}"
        if status(box.port, box.token, timeout=2.0) is not None:
            return None
        time.sleep(0.3)
    return f"JupyterLab did not answer within {timeout:g} s: {log_tail(box.folder)}"


def idle_seconds(state: Mapping[str, object], now: datetime | None = None) -> float | None:
    """Seconds since Jupyter's ``last_activity`` (API calls, kernel activity, terminals)."""
    stamp = state.get("last_activity")
    if not isinstance(stamp, str):
        return None
    try:
        last = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - last).total_seconds()


def is_running(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is still this instance's JupyterLab (a recycled pid is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"jupyterlab" in cmdline and str(folder / BOX / FILES).encode() in cmdline


def stop(pid: int, folder: Path, proc: subprocess.Popen[bytes] | None = None, grace: float = 10.0) -> None:
    """End the instance's JupyterLab (SIGTERM to its process group: it shuts its kernels down, then
    SIGKILL), and any kernel still left (kernels run in sessions of their own)."""
    if proc is None and not is_running(pid, folder):
        _end_kernels(folder)
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif not is_running(pid, folder):
                break
            time.sleep(0.1)
        else:
            continue
        break
    if proc is not None:
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    _end_kernels(folder)


def _end_kernels(folder: Path) -> None:
    """SIGKILL the kernels of this instance still alive: their command line names a connection
    file in the instance's runtime folder."""
    mark = str(folder / BOX / "jupyter" / "runtime").encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def write_config(folder: Path, config: Mapping[str, object]) -> None:
    """Write ``box/files/config.json`` without following links: notebook code (another user, when
    the server is root) owns ``box/`` and could have left a link there to a file of the server's.
    ``box`` lies in the server's own folder; ``files`` and the file are opened relative to it
    with O_NOFOLLOW, and the file is made anew (O_EXCL) after any old one (or link) is removed."""
    files = folder / BOX / FILES
    files.mkdir(parents=True, exist_ok=True)
    nofollow = os.O_NOFOLLOW | os.O_DIRECTORY
    box_fd = os.open(folder / BOX, os.O_RDONLY | nofollow)
    try:
        files_fd = os.open(FILES, os.O_RDONLY | nofollow, dir_fd=box_fd)
        try:
            try:
                os.unlink(CONFIG, dir_fd=files_fd)
            except FileNotFoundError:
                pass
            fd = os.open(CONFIG, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=files_fd)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(dict(config), indent=2) + "\n")
        finally:
            os.close(files_fd)
    finally:
        os.close(box_fd)


def log_tail(folder: Path, lines: int = 15) -> str:
    try:
        with open(folder / LOG_FILE, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
