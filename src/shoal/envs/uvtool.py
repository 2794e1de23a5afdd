"""Finding uv and running it with its output streamed line by line."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import InfraError

TAIL_LINES = 25


def find_uv(explicit: str | os.PathLike[str] | None = None) -> list[str]:
    """The command that runs uv: the given one, ``uv`` on PATH, the ``uv`` beside this Python, or ``python -m uv``."""
    if explicit:
        return [os.fspath(explicit)]
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    # Installed into the same virtual environment as Shoal, whose bin/ need not be on PATH.
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    raise InfraError("uv is needed to build environments and was not found; install it with 'pip install uv'")


@dataclass
class RunResult:
    returncode: int
    tail: list[str]  # the last lines of combined stdout and stderr
    timed_out: bool = False


def run_streaming(
    cmd: Sequence[str],
    *,
    sink: Callable[[str], None],
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float | None = None,
) -> RunResult:
    """Run ``cmd``, handing each output line (without its newline) to ``sink`` as it comes."""
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group, so a timeout ends uv and anything it started
    )
    timed_out = threading.Event()

    def _kill() -> None:
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout_s, _kill) if timeout_s else None
    if timer:
        timer.daemon = True
        timer.start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            sink(line)
        returncode = proc.wait()
    finally:
        if timer:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return RunResult(returncode, list(tail), timed_out.is_set())
