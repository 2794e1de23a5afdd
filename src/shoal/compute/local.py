"""The local backend: each job's runner is a detached process group on this machine.

Run folders are ``<home>/runs/<workspace>/<job>/<attempt>``: the runner works there, writes its
own output to ``runner.log`` and the ids of its job's process groups to ``user_pgids``. The
handle is the runner's pid. Ranks of a multi-node job are processes on this host (the runner
emulates them), so ``capabilities.multi_node`` is False.

Job code is isolated (``shoal.compute.sandbox``): the backend decides once, when it is built,
whether and how (``SHOAL_JOB_ISOLATION``, ``SHOAL_JOB_USER``, ``SHOAL_JOB_READ_PATHS``), and tells
each runner in ``SHOAL_SANDBOX``; the runner, trusted and unconfined, starts the user's command in
the sandbox.

Runners start warm: the backend keeps one ``python -m shoal.runtime.warm`` (``runtime/warm.py``),
which has imported the runner once, and asks it to fork each runner; the child takes the job's
environment, folder, session and log, so it is what a cold start would have made, ~100 ms
sooner. The first job (while the warm process imports), a job whose ``PYTHON*``/``LD_*`` variables
differ from the warm process's, and every job after the warm process died or stopped answering
start cold (``subprocess``), and a new warm process is started for the next ones.
``SHOAL_WARM_RUNNER=0`` turns warm starts off. A forked runner is no child of the server: its pid
is polled through /proc like a runner from before a restart, and the warm process reaps it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoal.compute import sandbox as isolation
from shoal.compute.base import AttemptKey, Capabilities, Handle, RunnerAttempt, hand_over_run_spec
from shoal.config import load_settings

RUNNER_MARK = b"shoal.runtime"
RUNNER_LOG = "runner.log"
DEFAULT_JAVA_HOME = "/usr/lib/jvm/default-java"
USER_PGIDS = "user_pgids"
WARM_ENV = "SHOAL_WARM_RUNNER"  # 0/false/off: every runner starts cold
WARM_LOG = "warm-runner.log"  # the warm process's own output, in the home
# Command-line room for the warm process's children: their runners' argv (``runtime/warm.py``).
WARM_TITLE_ROOM = 2048
WARM_ANSWER_SECONDS = 30.0  # a fork answers in milliseconds: longer than this, the process is stuck
WARM_TRIES = 3  # warm processes that die before they are ready, after which runners start cold


class LocalBackend:
    name = "local"
    capabilities = Capabilities(max_nodes=None, multi_node=False, survives_restart=True)

    def __init__(
        self,
        *,
        home: str | Path,
        python: str | None = None,
        isolation_mode: str | None = None,
        job_user: str | None = None,
        read_paths: str | None = None,
        network: str | None = None,
        warm: bool | None = None,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.python = python or sys.executable
        if warm is None:
            warm = os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "off", "no")
        self.warm = warm
        self._warm: WarmRunner | None = None
        self._warm_failures = 0
        self._warm_lock = threading.Lock()
        if isolation_mode is None:
            settings = load_settings()
            isolation_mode = settings.job_isolation
            job_user = job_user if job_user is not None else settings.job_user
            read_paths = read_paths if read_paths is not None else settings.job_read_paths
            network = network if network is not None else settings.job_network
        # None: job code runs unconfined (SHOAL_JOB_ISOLATION=off, or auto where bwrap cannot run).
        self.sandbox = isolation.resolve(
            isolation_mode, user=job_user, read_paths=read_paths, hide=[self.home], network=network
        )
        # Runners this server started: polled so they are reaped, never left as zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- the contract ------------------------------------------------------------------------

    def submit(self, attempt: RunnerAttempt) -> Handle:
        run_dir = self.run_dir(attempt)
        run_dir.mkdir(parents=True, exist_ok=True)
        hand_over_run_spec(run_dir, attempt.run_spec)
        argv, env = self.command(attempt)
        log = self.logs_location(attempt)
        pid = self._fork_warm(argv, env, run_dir, log)
        return str(pid if pid is not None else self._launch(argv, env, run_dir, log))

    def poll(self, handle: Handle) -> bool:
        pid = _pid(handle)
        if pid is None:
            return False  # not a handle this backend issues
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]
            return False
        # A forked runner, or one from before a server restart: alive only if that pid is still a
        # Shoal runner (``-m shoal.runtime``; the warm process itself says ``shoal.runtime.warm``).
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            return RUNNER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True

    def cancel(self, handle: Handle, attempt: AttemptKey, *, force: bool = False) -> None:
        pid = _pid(handle)
        if pid is not None:
            _kill(pid, signal.SIGKILL if force else signal.SIGTERM)
        if force:
            self.end_user_processes(attempt)

    def end_user_processes(self, attempt: AttemptKey) -> None:
        """The process groups a runner left behind (it wrote their ids in its run folder)."""
        try:
            groups = [int(p) for p in (self.run_dir(attempt) / USER_PGIDS).read_text().split()]
        except (OSError, ValueError):
            return
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        with self._warm_lock:
            if self._warm is not None and not self._warm.alive():
                self._warm = None  # collected; the next submit starts another

    def warm_up(self, timeout: float = 0.0) -> bool:
        """Start the warm process now rather than at the first submit (which starts cold, and the
        warm process with it: a server that never runs a job never pays for one); wait up to
        ``timeout`` s for it to be ready. Whether runners will start warm."""
        if not self.warm:
            return False
        with self._warm_lock:
            if self._warm is None or not self._warm.alive():
                self._respawn(self._warm)
            warm = self._warm
        if warm is None:
            return False
        deadline = time.monotonic() + timeout
        while True:
            with self._warm_lock:
                if warm.ready():
                    return warm.titled
            if not warm.alive() or time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def close(self) -> None:
        """Stop the warm process (runners it forked live on); a later submit starts another."""
        with self._warm_lock:
            warm, self._warm = self._warm, None
        if warm is not None:
            warm.close()

    def logs_location(self, attempt: AttemptKey) -> Path:
        return self.run_dir(attempt) / RUNNER_LOG

    def unplaceable(self, attempt: RunnerAttempt) -> str | None:
        return None  # this machine runs whatever it is given

    def exit_reason(self, handle: Handle) -> dict[str, str] | None:
        return None  # a lost runner is all this backend can tell

    # -- local specifics ---------------------------------------------------------------------

    def run_dir(self, attempt: AttemptKey) -> Path:
        """Where an attempt's runner works: its log, logs, copies and the ids of its process groups."""
        return self.home / "runs" / attempt.workspace / attempt.job / str(attempt.attempt)

    def command(self, attempt: RunnerAttempt) -> tuple[list[str], dict[str, str]]:
        """The runner's argv (``attempt.argv`` where a test gives one) and environment: the
        server's environment without its ``SHOAL_*`` settings, then ``attempt.env``, then the
        runner's own (home, server, token, run folder, and the sandbox of its job's code)."""
        if attempt.argv is not None:
            argv = list(attempt.argv)
        else:
            argv = [self.python, "-m", "shoal.runtime", "--workspace", attempt.workspace, "--job", attempt.job]
            argv += ["--attempt", str(attempt.attempt)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        java = java_home()
        if java:
            env["JAVA_HOME"] = java  # Spark jobs' spark-submit (shoal.entities.spark)
        env.update(attempt.env)
        env.update(
            SHOAL_HOME=str(self.home),
            SHOAL_SERVER_URL=attempt.server_url,
            SHOAL_JOB_TOKEN=attempt.token,
            SHOAL_RUN_DIR=str(self.run_dir(attempt)),
        )
        if self.sandbox is not None:
            env[isolation.RUNNER_ENV] = self.sandbox.to_env()
        return argv, env

    def _respawn(self, dead: WarmRunner | None) -> None:
        """A new warm process (under ``_warm_lock``). One that keeps dying before it is ready (it
        cannot import the runner: see ``WARM_LOG``) is not started again: runners start cold."""
        if dead is not None and not dead.was_ready:
            self._warm_failures += 1
        self._warm = None
        if self._warm_failures >= WARM_TRIES:
            self.warm = False
            return
        try:
            self._warm = WarmRunner.spawn(self.python, self.home)
        except OSError:
            self._warm_failures += 1

    def _fork_warm(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> int | None:
        """The pid of a runner forked by the warm process, or None: start this one cold."""
        if not self.warm or len(argv) < 3 or argv[0] != self.python:
            return None
        if argv[1:3] != ["-m", "shoal.runtime"] and argv[1] != "-c":
            return None
        log.parent.mkdir(parents=True, exist_ok=True)
        with self._warm_lock:
            warm = self._warm
            if warm is None or not warm.alive():
                # The first start, or the warm process died: this job starts cold, the next warm.
                self._respawn(warm)
                return None
            if not warm.ready():
                return None  # still importing
            if not warm.titled:
                # Its children could not show a runner's command line, which is how their pids
                # are recognised (``poll``): on this machine every runner starts cold.
                self.warm = False
                warm.close()
                self._warm = None
                return None
            pid, usable = warm.fork({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)})
            if not usable:
                warm.close()
                self._warm = None
            return pid

    def _launch(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> int:
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


class WarmRunner:
    """The server's end of one ``python -m shoal.runtime.warm`` (see ``runtime/warm.py``): requests
    on its stdin, answers on its stdout, one JSON line each; its stderr goes to ``WARM_LOG``."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._pending = b""
        self._ready = False
        self.titled = False

    @property
    def was_ready(self) -> bool:
        return self._ready

    @classmethod
    def spawn(cls, python: str, home: Path) -> WarmRunner:
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        with open(home / WARM_LOG, "ab") as log:
            proc = subprocess.Popen(
                # The padding is room for the children's command lines (their titles).
                [python, "-m", "shoal.runtime.warm", " " * WARM_TITLE_ROOM],
                cwd=home,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        return cls(proc)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        """Whether it has imported the runner (never waits)."""
        if not self._ready:
            answer = self._answer(0)
            self._ready = bool(answer and answer.get("ready"))
            self.titled = bool(answer and answer.get("titled"))
        return self._ready

    def fork(self, request: dict[str, Any]) -> tuple[int | None, bool]:
        """(the forked runner's pid or None, whether this process may be asked again)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return None, False  # it died: the job starts cold
        answer = self._answer(WARM_ANSWER_SECONDS)
        if answer is None:
            # Dead or stuck: end it, then read its answer pipe to the end. A child it forked
            # answers before letting go of the pipe, so no child is missed (and none started twice).
            self.close()
            answer = self._answer(WARM_ANSWER_SECONDS)
            pid = answer.get("pid") if answer else None
            return (pid if isinstance(pid, int) else None), False
        pid = answer.get("pid")
        return (pid if isinstance(pid, int) else None), True

    def _answer(self, timeout: float) -> dict[str, Any] | None:
        """The next answer line, waiting up to ``timeout`` s; None on timeout or end of pipe."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def java_home(environ: Mapping[str, str] | None = None) -> str | None:
    """The Java that Spark jobs run on: ``SHOAL_JAVA_HOME`` (the server's setting), ``JAVA_HOME``,
    Debian's ``/usr/lib/jvm/default-java``, else the one ``java`` on PATH resolves to."""
    environ = os.environ if environ is None else environ
    if environ.get("SHOAL_JAVA_HOME"):
        return environ["SHOAL_JAVA_HOME"]  # as configured: a wrong one fails Spark jobs saying so
    for candidate in (environ.get("JAVA_HOME"), DEFAULT_JAVA_HOME):
        if candidate and os.path.exists(os.path.join(candidate, "bin", "java")):
            return candidate
    found = shutil.which("java", path=environ.get("PATH"))
    if found:
        return os.path.dirname(os.path.dirname(os.path.realpath(found)))
    return None


def _pid(handle: Handle) -> int | None:
    """The pid a local handle names (a positive decimal), else None."""
    text = str(handle)
    return int(text) if text.isdigit() and int(text) > 0 else None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
