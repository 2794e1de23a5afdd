"""Running the user command: one process group per rank, stopped as a whole.

Distribution is emulated on this machine as Azure ML launches it: ``pytorch`` starts
``instance_count × process_count_per_instance`` processes with the torch variables, ``mpi`` the
same count with Open MPI's variables (Shoal launches them itself, no ``mpirun``), ``tensorflow``
one process per worker and parameter server with ``TF_CONFIG``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRACE_SECONDS = 10.0


@dataclass
class Rank:
    env: dict[str, str]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_environment(kind: str, rank: int, per_node: int, world: int, master: tuple[str, str]) -> dict[str, str]:
    """Azure's variables of one ``pytorch`` or ``mpi`` rank (``master``: rank 0's address, port)."""
    node, local = divmod(rank, per_node)
    if kind == "pytorch":
        return {
            "RANK": str(rank),
            "LOCAL_RANK": str(local),
            "WORLD_SIZE": str(world),
            "NODE_RANK": str(node),
            "LOCAL_WORLD_SIZE": str(per_node),
            "MASTER_ADDR": master[0],
            "MASTER_PORT": master[1],
        }
    return {
        "OMPI_COMM_WORLD_RANK": str(rank),
        "OMPI_COMM_WORLD_SIZE": str(world),
        "OMPI_COMM_WORLD_LOCAL_RANK": str(local),
        "OMPI_COMM_WORLD_LOCAL_SIZE": str(per_node),
        "OMPI_COMM_WORLD_NODE_RANK": str(node),
    }


def plan_ranks(distribution: dict[str, Any] | None, resources: dict[str, Any], logs: Path) -> list[Rank]:
    """The processes to start and each one's extra environment and log file."""
    nodes = max(1, int(resources.get("instance_count") or 1))
    kind = (distribution or {}).get("type")
    if not kind:
        return [Rank({}, logs / "std_log.txt")]
    if kind in ("pytorch", "mpi"):
        per_node = max(1, int(distribution.get("process_count_per_instance") or 1))  # type: ignore[union-attr]
        world = nodes * per_node
        port = str(_free_port())
        ranks = []
        for rank in range(world):
            env = rank_environment(kind, rank, per_node, world, ("127.0.0.1", port))
            ranks.append(Rank(env, logs / f"std_log_process_{rank}.txt"))
        return ranks
    if kind == "tensorflow":
        workers = int(distribution.get("worker_count") or nodes)  # type: ignore[union-attr]
        servers = int(distribution.get("parameter_server_count") or 0)  # type: ignore[union-attr]
        cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(workers)]}
        if servers:
            cluster["ps"] = [f"127.0.0.1:{_free_port()}" for _ in range(servers)]
        ranks = []
        for role, count in (("worker", workers), ("ps", servers)):
            for index in range(count):
                config = {"cluster": cluster, "task": {"type": role, "index": index}, "environment": "cloud"}
                name = f"std_log_process_{len(ranks)}.txt"
                ranks.append(Rank({"TF_CONFIG": json.dumps(config)}, logs / name))
        return ranks
    raise ValueError(f"distribution type {kind!r} is not supported locally")


class UserProcesses:
    """Starts every rank in its own session (process group) and stops them together.

    ``wrap``, where job code is isolated, turns a rank's argv into the sandboxed one (it sets the
    working folder itself): the process started is then the sandbox's, which leads the session,
    and the rank's processes stay in its process group and PID namespace, so stopping the group
    or the sandbox stops them all."""

    def __init__(
        self,
        command: str,
        cwd: Path,
        env: dict[str, str],
        ranks: list[Rank],
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.command = command
        self.cwd = cwd
        self.env = env
        self.ranks = ranks
        self.wrap = wrap
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Lock()
        self.stop_reason: str | None = None

    def start(self) -> None:
        shell = shutil.which("bash") or "/bin/sh"
        argv = [shell, "-c", self.command]
        cwd = self.cwd
        if self.wrap is not None:
            argv, cwd = self.wrap(argv), Path("/")
        for rank in self.ranks:
            rank.log.parent.mkdir(parents=True, exist_ok=True)
            with open(rank.log, "ab") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env={**self.env, **rank.env},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs.append(proc)

    def _pause(self, seconds: float) -> None:
        """Up to ``seconds``, less when a rank exits (its pidfd turns readable): a job's end is
        noticed at once, not on the next 50 ms poll."""
        try:
            live = [os.pidfd_open(p.pid) for p in self.procs if p.returncode is None]
        except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): poll
            time.sleep(seconds)
            return
        try:
            select.select(live, [], [], seconds)
        finally:
            for fd in live:
                os.close(fd)

    def wait(self, *, timeout: float | None, should_stop: threading.Event) -> int:
        """Exit code of the first failing rank (0 when all succeed)."""
        deadline = time.monotonic() + timeout if timeout else None
        first_failure: int | None = None
        while any(p.poll() is None for p in self.procs):
            if should_stop.is_set():
                self.stop("canceled")
                break
            if deadline is not None and time.monotonic() > deadline:
                self.stop("timeout")
                break
            failed = [p for p in self.procs if p.poll() not in (None, 0)]
            if failed and len(self.procs) > 1:
                first_failure = failed[0].returncode  # its code, not that of the peers stopped for it
                self.stop("rank failed")  # one failed rank fails the job: do not leave peers hanging
                break
            self._pause(0.05)
        codes = [p.wait() for p in self.procs]
        if first_failure is not None:
            return first_failure
        return next((c for c in codes if c != 0), 0)

    def stop(self, reason: str) -> None:
        """SIGTERM to every group, then SIGKILL after the grace period."""
        with self._stopping:
            if self.stop_reason is None:
                self.stop_reason = reason
        for proc in self.procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
            time.sleep(0.05)
        for proc in self.procs:
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
