"""The local backend: each job's runner is a detached process group on this machine.

Run folders are ``<home>/runs/<workspace>/<job>/<attempt>``: the runner works there, writes its
own output to ``runner.log`` and the ids of its job's process groups to ``user_pgids``. The
handle is the runner's pid. Ranks of a multi-node job are processes on this host (the runner
emulates them), so ``capabilities.multi_node`` is False.

Job code is isolated (``shoal.compute.sandbox``): the backend decides once, when it is built,
whether and how (``SHOAL_JOB_ISOLATION``, ``SHOAL_JOB_USER``, ``SHOAL_JOB_READ_PATHS``), and tells
each runner in ``SHOAL_SANDBOX``; the runner, trusted and unconfined, starts the user's command in
the sandbox.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from shoal.compute import sandbox as isolation
from shoal.compute.base import AttemptKey, Capabilities, Handle, RunnerAttempt
from shoal.config import load_settings

RUNNER_MARK = b"shoal.runtime"
RUNNER_LOG = "runner.log"
DEFAULT_JAVA_HOME = "/usr/lib/jvm/default-java"
USER_PGIDS = "user_pgids"


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
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.python = python or sys.executable
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
        argv, env = self.command(attempt)
        return str(self._launch(argv, env, run_dir, self.logs_location(attempt)))

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
