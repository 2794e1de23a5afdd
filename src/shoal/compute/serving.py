"""Scoring instances as local processes: started, checked, stopped (no store, no policy).

Each instance is ``<python of the deployment's env> scoring_server.py`` in its own process
group, its output appended to its log file, its pid written beside it so that a server that
crashed can end the instances it left behind when it starts again (``end_orphans``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Run as a file by the deployment's interpreter, never imported here (runtime imports compute).
SCORING_SERVER = Path(__file__).resolve().parents[1] / "runtime" / "scoring_server.py"
INSTANCE_MARK = b"scoring_server.py"
PID_FILE = "pid"
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
        (self.folder / PID_FILE).unlink(missing_ok=True)


def start_instance(
    index: int, folder: Path, python: str, script: Path, cwd: Path, env: Mapping[str, str]
) -> InstanceProcess:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PORT_FILE).unlink(missing_ok=True)
    argv = [python, str(SCORING_SERVER), "--script", str(script), "--port-file", str(folder / PORT_FILE)]
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (folder / PID_FILE).write_text(str(proc.pid))
    return InstanceProcess(index, folder, proc)


def end_orphans(root: Path) -> int:
    """Kill the instances a previous server left running under ``root`` (checked by command line)."""
    ended = 0
    for pid_file in root.glob("**/" + PID_FILE):
        try:
            pid = int(pid_file.read_text())
            if INSTANCE_MARK in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)
                ended += 1
        except (OSError, ValueError):
            pass
        pid_file.unlink(missing_ok=True)
    return ended


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
