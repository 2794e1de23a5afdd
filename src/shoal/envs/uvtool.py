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
    """The command that runs uv: the given one, the ``uv`` package's binary, ``uv`` on PATH, or beside this Python.

    ``uv`` is one of Shoal's dependencies, so ``pip install shoal`` brings its binary; the package's
    ``find_uv_bin()`` finds it wherever pip put it (a venv, ``--user``, a system prefix).
    """
    if explicit:
        return [os.fspath(explicit)]
    packaged = _packaged_uv()
    if packaged:
        return [packaged]
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    # Installed into the same virtual environment as Shoal, whose bin/ need not be on PATH.
    for name in ("uv", "uv.exe"):
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside)]
    raise InfraError("uv is needed to build environments and was not found; install it with 'pip install uv'")


def _packaged_uv() -> str | None:
    """The binary of the ``uv`` Python package (a dependency of Shoal), when it is installed and whole."""
    if importlib.util.find_spec("uv") is None:
        return None
    try:
        from uv import find_uv_bin
    except ImportError:
        return None
    try:
        return os.fspath(find_uv_bin())
    except (FileNotFoundError, OSError):
        return None


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
