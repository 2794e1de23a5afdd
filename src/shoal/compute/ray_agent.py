"""What runs on a Ray node for every one-node job attempt of one server: that node's *agent*.

Ray needs seconds to start a worker process for each new actor (3.4 s on the benchmark's
machine). An agent is one long-lived actor per node and server (zero CPUs, threaded, detached and
named after its node, made by ``shoal.compute.ray_agents``): its worker process is started once,
and every runner on its node is a child of it, started in milliseconds. The node's share of the
job's resources is held by a one-bundle placement group the server makes per attempt, not by the
agent: Ray reserves a bundle without starting any worker.

Per runner the agent does what the per-attempt actor (``shoal.compute.ray_node.RunnerHost``) does:
it starts ``python -m shoal.runtime`` in the attempt's run folder on this node (the same folder,
``run_dir_of``), answers ``state`` (is it alive, the next piece of ``runner.log``; a long poll
answered the moment the runner exits), ``terminate``s it, and ends the process groups its job left.
A runner's record is dropped when the server ``finish``es it (it has the whole log), or ``linger``
seconds after the runner exited when no server came for it; then the agent also removes the
attempt's placement group, so the node's share is never held for good by a server that is gone.

Runners start warm, as on the local backend: the agent keeps a ``python -m shoal.runtime.warm``
(``runtime/warm.py``), which has imported the runner once, and asks it to fork each runner (its
imports done: ~0.1 s sooner). The first runner while it imports, and a runner whose
``PYTHON*``/``LD_*`` variables differ from it, start cold. A forked runner is no child of the
agent (the warm process reaps it): the agent watches it through a pidfd. Runners never outlive
their agent (a lost node, or an agent that died), as they never outlived their actor before:
cold ones and the warm process are started from one thread of the agent that lives as long as
the agent, with ``PR_SET_PDEATHSIG`` (SIGKILL), and forked ones die with the warm process.

This module imports ``ray_node`` and the warm process's client (``compute/local.py``); Ray only
inside the actor, on the node.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.compute.base import hand_over_run_spec
from shoal.compute.local import WarmRunner
from shoal.compute.ray_node import (
    LOG_CHUNK,
    RUNNER_LOG,
    die_with_parent,
    end_process_groups,
    node_home,
    read_log_chunk,
    run_dir_of,
)

# How many calls an agent serves at once: one long poll per runner on its node, plus starts,
# cancels and the server's other questions.
AGENT_CONCURRENCY = 256
SWEEP_EVERY = 5.0


WARM_TITLE_ROOM = 2048  # as compute/local.py: room for the forked runners' command lines
STARTUP_PREFIXES = ("PYTHON", "LD_")  # as runtime/warm.py: what a fork cannot change
# As runtime/handover.py (the runtime imports no compute module): a follower's runner waits for
# the lock its predecessor's runner holds in its run folder while its commands run.
START_AFTER_ENV = "SHOAL_START_AFTER"
LOCK_NAME = "commands.lock"


class _Forked:
    """A runner the warm process forked: not this process's child, watched through a pidfd (its
    exit code is the warm process's to reap: unknown here)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except OSError:  # gone already
            self._fd, self.returncode = None, -1

    def poll(self) -> int | None:
        self.wait(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self._fd is not None and select.select([self._fd], [], [], timeout)[0]:
            os.close(self._fd)
            self._fd, self.returncode = None, -1
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self._fd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._fd, sig)


@dataclass
class _Runner:
    key: tuple[str, str, int]
    proc: subprocess.Popen[bytes] | _Forked
    run_dir: Path
    log_path: Path
    slot: str | None
    exited: threading.Event = field(default_factory=threading.Event)
    exited_at: float | None = None


class NodeAgent:
    """The runners of one server's one-node attempts on this node (a Ray actor: see the module)."""

    def __init__(self, scope: str, linger: float = 600.0) -> None:
        import ray  # on the node, inside the actor: Ray is there

        self.node_id = ray.get_runtime_context().get_node_id()
        self.scope = scope
        self.linger = linger
        self.host = socket.gethostname()
        self.started_at = time.time()
        self._runners: dict[str, _Runner] = {}
        self._lock = threading.Lock()
        self._retiring = False
        # Runs stopped or finished before their start was served (calls run in threads, in any
        # order): a start that comes after never starts them.
        self._gone: dict[str, float] = {}
        self._starting = threading.Lock()  # one start at a time: a run is never started twice
        self._launches: queue.Queue[tuple[list[str], dict[str, str], Path, Path, Future[Any]] | None] = queue.Queue()
        self._warm: Any = None  # compute.local.WarmRunner, used by the launcher thread only
        self._warm_startup: dict[str, str] | None = None
        self._warm_failures = 0
        self.warm = hasattr(os, "pidfd_open") and os.environ.get("SHOAL_WARM_RUNNER", "1").lower() not in (
            "0",
            "false",
            "off",
            "no",
        )
        threading.Thread(target=self._launcher, name="shoal-agent-launcher", daemon=True).start()
        self._launches.put(None)  # the warm process starts importing now, before the first job
        threading.Thread(target=self._sweeper, name="shoal-agent-sweeper", daemon=True).start()

    # -- what the server calls -----------------------------------------------------------------

    def about(self) -> dict[str, Any]:
        """Who this agent is: its process (the parent of every runner it starts) and node."""
        return {"pid": os.getpid(), "node_id": self.node_id, "host": self.host, "started_at": self.started_at}

    def start(
        self,
        run: str,
        workspace: str,
        job: str,
        attempt: int,
        env: dict[str, str],
        argv: list[str] | None,
        offset: int = 0,
        slot: str | None = None,
        after: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start the runner of ``run`` (the attempt's name) once; answers as ``state`` does.
        ``after``: another run on this node whose commands this one's waits for (a follower,
        prepared ahead: ``shoal.runtime.handover``); ignored once that runner has exited.
        ``spec``: the attempt's run spec, left in its run folder (``RunnerAttempt.run_spec``)."""
        if after is not None:
            with self._lock:
                before = self._runners.get(after)
            if before is not None and not before.exited.is_set():
                env = {**env, START_AFTER_ENV: str(before.run_dir / LOCK_NAME)}
        with self._starting:
            self._start(run, workspace, job, attempt, env, argv, slot, spec)
        return self.state(run, offset)

    def _start(
        self,
        run: str,
        workspace: str,
        job: str,
        attempt: int,
        env: dict[str, str],
        argv: list[str] | None,
        slot: str | None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            known = run in self._runners or run in self._gone
        if not known:
            run_dir = run_dir_of(self.scope, workspace, job, attempt)
            run_dir.mkdir(parents=True, exist_ok=True)
            hand_over_run_spec(run_dir, spec)
            if argv is None:
                argv = [sys.executable, "-m", "shoal.runtime", "--workspace", workspace, "--job", job]
                argv += ["--attempt", str(attempt)]
            # This worker's environment (Ray's, with the job's runtime_env) without Shoal settings
            # of its own, then what the server sends, then the runner's own folder and home.
            full = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
            full.update(env)
            full.update(SHOAL_HOME=str(node_home()), SHOAL_RUN_DIR=str(run_dir))
            done: Future[Any] = Future()
            self._launches.put((argv, full, run_dir, run_dir / RUNNER_LOG, done))
            proc = done.result()
            runner = _Runner((workspace, job, attempt), proc, run_dir, run_dir / RUNNER_LOG, slot)
            with self._lock:
                self._runners[run] = runner
            threading.Thread(target=self._watch, args=(runner,), name="shoal-agent-watch", daemon=True).start()

    def state(self, run: str, offset: int, wait: float = 0.0) -> dict[str, Any]:
        """Whether the runner lives and its log from ``offset`` (1 MB at most); with ``wait``,
        answered when the runner exits or after ``wait`` seconds. ``unknown``: no such runner
        here (it never started, or its record was dropped)."""
        with self._lock:
            runner = self._runners.get(run)
        if runner is None:
            return {"unknown": True, "alive": False, "log": b"", "more": False, "node_id": self.node_id}
        if wait > 0:
            runner.exited.wait(wait)
        alive = not runner.exited.is_set()  # before the log: an exited runner's log is whole
        data = read_log_chunk(runner.log_path, offset)
        return {
            "alive": alive,
            "exit_code": None if alive else runner.proc.returncode,
            "log": data,
            "more": len(data) == LOG_CHUNK,
            "pid": runner.proc.pid,
            "agent_pid": os.getpid(),
            "host": self.host,
            "node_id": self.node_id,
        }

    def runs(self) -> list[str]:
        with self._lock:
            return list(self._runners)

    def terminate(self, run: str, force: bool = False) -> None:
        """SIGTERM to the runner (it winds its job down); forced: SIGKILL, and its job's groups."""
        with self._lock:
            runner = self._runners.get(run)
            if runner is None:
                self._forget(run)
                return
        with contextlib.suppress(ProcessLookupError):
            runner.proc.send_signal(signal.SIGKILL if force else signal.SIGTERM)
        if force:
            end_process_groups(runner.run_dir)

    def end_user_processes(self, workspace: str, job: str, attempt: int) -> None:
        """What a dead runner's job left on this node (also for attempts of other kinds)."""
        end_process_groups(run_dir_of(self.scope, workspace, job, attempt))

    def finish(self, run: str) -> None:
        """The runner has exited and the server has its log (the server frees its share)."""
        with self._lock:
            if self._runners.pop(run, None) is None:
                self._forget(run)

    def retire(self) -> None:
        """A server with other code took over: end this agent once its runners are done."""
        self._retiring = True

    # -- inside ----------------------------------------------------------------------------------

    def _forget(self, run: str) -> None:
        """(under ``_lock``) A run that must never start here."""
        self._gone[run] = time.monotonic()
        while len(self._gone) > 10000:
            self._gone.pop(next(iter(self._gone)))

    def _launcher(self) -> None:
        """Starts every runner (and the warm process), from this one thread: the parent-death
        signal is tied to the thread that forked, and this one lives as long as the agent."""
        while True:
            item = self._launches.get()
            if item is None:
                self._warm_for({k: v for k, v in os.environ.items() if k.startswith(STARTUP_PREFIXES)})
                continue
            argv, env, cwd, log_path, done = item
            try:
                proc = self._fork_warm(argv, env, cwd, log_path) or self._start_cold(argv, env, cwd, log_path)
            except BaseException as exc:  # noqa: BLE001 - the caller raises it to the server
                done.set_exception(exc)
            else:
                done.set_result(proc)

    def _start_cold(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - a prctl only, no Python state touched
            )

    def _warm_for(self, startup: dict[str, str]) -> Any:
        """The warm process for runners with these ``PYTHON*``/``LD_*`` variables: the one there
        is, else a new one (ready later: this runner starts cold). None: warm starts are off."""
        warm = self._warm
        if warm is not None and warm.alive() and self._warm_startup == startup:
            return warm
        if warm is not None:
            if not warm.was_ready:
                self._warm_failures += 1
            _let_go(warm)
            self._warm = None
        if not self.warm or self._warm_failures >= 3:
            return None
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SHOAL_", *STARTUP_PREFIXES))}
        home = node_home()
        home.mkdir(parents=True, exist_ok=True)
        with open(home / "warm-runner.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shoal.runtime.warm", " " * WARM_TITLE_ROOM],
                cwd=home,
                env={**base, **startup},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - a prctl only, no Python state touched
            )
        self._warm, self._warm_startup = WarmRunner(proc), startup
        return None

    def _fork_warm(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> _Forked | None:
        """A runner forked by the warm process, or None: start this one cold."""
        if len(argv) < 3 or argv[0] != sys.executable or (argv[1:3] != ["-m", "shoal.runtime"] and argv[1] != "-c"):
            return None
        warm = self._warm_for({k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES)})
        if warm is None or not warm.ready():
            return None
        request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log_path), "die_with_parent": True}
        pid, usable = warm.fork(request)
        if not usable:
            _let_go(warm)
            self._warm = None
        return _Forked(pid) if pid is not None else None

    def _watch(self, runner: _Runner) -> None:
        runner.proc.wait()
        runner.exited_at = time.monotonic()
        runner.exited.set()

    def _sweeper(self) -> None:
        """Runners no server came for ``linger`` s after they exited: their leftovers ended and
        their placement groups removed (the node's share freed); a retiring agent with no runner
        left ends itself."""
        import ray

        while True:
            time.sleep(SWEEP_EVERY)
            now = time.monotonic()
            with self._lock:
                stale = [
                    (run, r)
                    for run, r in self._runners.items()
                    if r.exited_at is not None and now - r.exited_at >= self.linger
                ]
                for run, _ in stale:
                    self._runners.pop(run, None)
                idle = not self._runners
            for _, runner in stale:
                end_process_groups(runner.run_dir)
                if runner.slot:
                    with contextlib.suppress(Exception):
                        ray.util.remove_placement_group(ray.util.get_placement_group(runner.slot))
            if self._retiring and idle:
                os._exit(0)  # no runner left to take with it


def _let_go(warm: Any) -> None:
    """A warm process this agent no longer asks: its stdin closed, it exits once the runners it
    forked have (they die with it); reaped by a thread of its own."""
    with contextlib.suppress(OSError):
        warm.proc.stdin.close()
    threading.Thread(target=warm.proc.wait, name="shoal-agent-warm-reap", daemon=True).start()
