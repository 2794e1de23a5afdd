"""What runs on a Ray node for one job attempt: the actor that holds the node's share for the job
and starts the runner (``python -m shoal.runtime``) there, detached from the Ray worker.

This module imports nothing of Shoal's, and Ray only inside ``finish`` (run on the node): the server's
backend (``shoal.compute.raybackend``) turns ``RunnerHost`` into a Ray actor class, and Ray imports
this module on the node (shipped with the job's ``runtime_env`` or installed with Shoal).

The runner works in ``<node home>/runs/<server tag>/<workspace>/<job>/<attempt>`` (``SHOAL_RAY_NODE_HOME`` on
the node, else ``<tmp>/shoal-ray``); environments built there are cached per node under
``<node home>/envs``. Its own output goes to ``runner.log`` in that folder, which the server copies
to its home as it grows (``state``). Once the runner has exited and the server has its log, the
server ``finish``es the actor, which frees the node's share; an actor no server comes for exits by
itself ``linger`` seconds after its runner. What a dead runner's job left behind on a node is
ended by ``end_user_processes_at``, a task the server runs on that node.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RUNNER_LOG = "runner.log"
USER_PGIDS = "user_pgids"
LOG_CHUNK = 1 << 20
PR_SET_PDEATHSIG = 1


def node_home() -> Path:
    return Path(os.environ.get("SHOAL_RAY_NODE_HOME") or Path(tempfile.gettempdir()) / "shoal-ray")


def run_dir_of(scope: str, workspace: str, job: str, attempt: int) -> Path:
    """Where an attempt's runner works on this node (``scope`` names the server: its home)."""
    return node_home() / "runs" / scope / workspace / job / str(attempt)


def end_process_groups(run_dir: Path) -> None:
    """The process groups a runner recorded in ``user_pgids`` (what a dead runner left)."""
    try:
        groups = [int(p) for p in (run_dir / USER_PGIDS).read_text().split()]
    except (OSError, ValueError):
        return
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def end_user_processes_at(scope: str, workspace: str, job: str, attempt: int) -> None:
    """Run as a Ray task on the node that ran the attempt: end its job's process groups."""
    end_process_groups(run_dir_of(scope, workspace, job, attempt))


def read_log_chunk(path: Path, offset: int) -> bytes:
    """Up to LOG_CHUNK bytes of a runner's log from ``offset`` (none while it is not written yet)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read(LOG_CHUNK)
    except OSError:
        return b""


def die_with_parent() -> None:
    """In the runner, before exec: SIGKILL when the actor's worker dies, so a runner never
    outlives the Ray actor that holds its node's share. Not SIGTERM: a runner winds its job down
    on SIGTERM and reports it ``Canceled``, while a lost actor is a failure the server reports."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class RunnerHost:
    """One attempt's runner on this node (made a Ray actor by the server's backend)."""

    def __init__(
        self,
        workspace: str,
        job: str,
        attempt: int,
        env: dict[str, str],
        argv: list[str] | None = None,
        linger: float = 600.0,
        scope: str = "shoal",
    ) -> None:
        import ray  # on the node, inside the actor: Ray is there

        self.node_id = ray.get_runtime_context().get_node_id()
        home = node_home()
        # ``scope`` names the server (its home): servers sharing a node never share a folder.
        self.run_dir = run_dir_of(scope, workspace, job, attempt)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / RUNNER_LOG
        if argv is None:
            argv = [sys.executable, "-m", "shoal.runtime", "--workspace", workspace, "--job", job]
            argv += ["--attempt", str(attempt)]
        # The node's environment (Ray's worker, with the job's runtime_env) without Shoal
        # settings of its own, then what the server sends.
        full = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        full.update(env)
        full.update(SHOAL_HOME=str(home), SHOAL_RUN_DIR=str(self.run_dir))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.run_dir,
                env=full,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - a prctl only, no Python state touched
            )
        self.linger = linger
        self.exited_at: float | None = None
        threading.Thread(target=self._watch, name="shoal-runner-watch", daemon=True).start()

    def _watch(self) -> None:
        self.proc.wait()
        self.exited_at = time.monotonic()
        # No server came to finish this actor: free the node's share anyway.
        time.sleep(self.linger)
        self.end_user_processes()
        os._exit(0)

    def state(self, offset: int, wait: float = 0.0) -> dict[str, Any]:
        """Whether the runner lives, its exit code, and its log from ``offset`` (1 MB at most).
        With ``wait``, answered when the runner exits or after ``wait`` seconds, whichever is
        first: the server learns of an exit at once (and frees the node for the next job)
        without asking over and over."""
        if wait > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        code = self.proc.poll()
        data = read_log_chunk(self.log_path, offset)
        return {
            "alive": code is None,
            "exit_code": code,
            "log": data,
            "more": len(data) == LOG_CHUNK,
            "pid": self.proc.pid,
            "host": socket.gethostname(),
            "node_id": self.node_id,
        }

    def terminate(self, force: bool = False) -> None:
        """SIGTERM to the runner (it winds its job down); forced: SIGKILL, and its job's groups."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL if force else signal.SIGTERM)
        if force:
            self.end_user_processes()

    def end_user_processes(self) -> None:
        end_process_groups(self.run_dir)

    def finish(self) -> None:
        """The runner has exited and the server has its log: free the node's share."""
        import ray

        ray.actor.exit_actor()
