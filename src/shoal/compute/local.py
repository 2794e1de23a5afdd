"""The local backend: each job's runner is a detached process group on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

RUNNER_MARK = b"shoal.runtime"


class LocalBackend:
    def __init__(self) -> None:
        # Runners this server started: polled so they are reaped, never left as zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def launch(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        return proc.pid

    def alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]
            return False
        # A runner from before a server restart: alive only if that pid is still a Shoal runner.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            return RUNNER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True

    def signal(self, pid: int, sig: int = signal.SIGTERM) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
