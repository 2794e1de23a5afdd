"""Scoring instances as local processes: started, checked, stopped (no store, no policy).

Each instance is ``<python of the deployment's env> scoring_server.py`` in its own process
group, its output appended to its log file, its pid written beside its folder (out of the
instance's reach) so that a server that crashed can end the instances it left behind when it
starts again (``end_orphans``). With job isolation on (``compute/sandbox.py``) the scoring
script runs in the same sandbox as job code: it sees the system, its interpreter, its model and
code (read-only) and its own instance folder, nothing of the server's home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.compute.sandbox import Sandbox

# Run as a file by the deployment's interpreter, never imported here (runtime imports compute).
SCORING_SERVER = Path(__file__).resolve().parents[1] / "runtime" / "scoring_server.py"
INSTANCE_MARK = b"scoring_server.py"
PID_SUFFIX = ".pid"  # <generation>/instance-<i>.pid, beside the instance's folder, not in it
PORT_FILE = "port"
LOG_FILE = "instance.log"


@dataclass
class InstanceProcess:
    """One running (or ended) scoring process."""

    index: int
    folder: Path
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_FILE

    def alive(self) -> bool:
        return self.proc.poll() is None

    def read_port(self) -> int | None:
        if self.port is None:
            try:
                self.port = int((self.folder / PORT_FILE).read_text())
            except (OSError, ValueError):
                return None
        return self.port

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; reaped either way."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        pid_file(self.folder).unlink(missing_ok=True)


def pid_file(folder: Path) -> Path:
    return folder.with_name(folder.name + PID_SUFFIX)


# Variables of the server's environment that name its own folders (as for jobs: runtime/confine.py).
HOST_ONLY = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR")


def start_instance(
    index: int,
    folder: Path,
    python: str,
    script: Path,
    cwd: Path,
    env: Mapping[str, str],
    *,
    sandbox: Sandbox | None = None,
    readable: Sequence[str | Path] = (),
    host: str = "127.0.0.1",
) -> InstanceProcess:
    """Start one instance listening on ``host``; with ``sandbox``, confined to ``readable``
    (read-only) and ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PORT_FILE).unlink(missing_ok=True)
    argv = [python, str(SCORING_SERVER), "--script", str(script), "--port-file", str(folder / PORT_FILE)]
    argv += ["--host", host]
    env = dict(env)
    if sandbox is not None:
        home, tmp = folder / "home", folder / "tmp"
        for sub in (home, tmp):
            sub.mkdir(exist_ok=True)
        for var in HOST_ONLY:
            env.pop(var, None)
        env["HOME"] = str(home)
        shown = [*readable, SCORING_SERVER.parent, interpreter_prefix(python), os.path.realpath(sys.base_prefix)]
        sandbox.give([folder])
        argv = sandbox.argv(
            argv,
            cwd=cwd,
            writable=[folder],
            readable=[str(p) for p in shown if Path(p).exists()],
            tmp=tmp,
            setenv=sandbox.move_loader_variables(env),  # never on bwrap itself (LD_PRELOAD)
        )
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Unconfined, an instance still ends with the server (bwrap's --die-with-parent does
            # this in the sandbox): a server killed outright leaves no instance serving for it.
            preexec_fn=None if sandbox is not None else _die_with_parent(),
        )
    pid_file(folder).write_text(str(proc.pid))
    return InstanceProcess(index, folder, proc)


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec: SIGTERM to it when the starting thread ends (Linux
    prctl PR_SET_PDEATHSIG). Looked up here, in the parent: the child only calls it. None where
    there is no prctl; end_orphans cleans up at the next start there."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def end_orphans(root: Path) -> int:
    """Kill the instances a previous server left running under ``root`` (checked by command line)."""
    ended = 0
    for found in root.glob("**/instance-*" + PID_SUFFIX):
        try:
            pid = int(found.read_text())
            if INSTANCE_MARK in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)
                ended += 1
        except (OSError, ValueError):
            pass
        found.unlink(missing_ok=True)
    return ended


def interpreter_prefix(python: str | Path) -> str:
    """The installation an interpreter belongs to (``…/bin/python3`` -> ``…``), symlinks followed."""
    return str(Path(os.path.realpath(python)).parent.parent)


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log (read from the end, so a big log costs little)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:]) if lines > 0 else ""
