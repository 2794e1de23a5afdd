"""``python -m shoal.runtime.warm``: the runner's start-up paid once, then forked for every job.

A cold runner (``python -m shoal.runtime``) spends most of its start in imports (its HTTP client,
the rest of ``shoal.runtime``, ``shoal.envs``). The local backend (``compute/local.py``) keeps one
of these processes per server: it imports what a runner imports, says ``{"ready": ...}`` on its
stdout, then reads requests on its stdin, one JSON line each: ``{"argv", "env", "cwd", "log"}``.
For each it forks a child that becomes what ``argv`` would have started (``python -m
shoal.runtime …``, or ``python -c CODE …`` for the backend contract tests): a session of its own,
``cwd``, exactly ``env`` as its environment (nothing of this process's), stdin from /dev/null,
stdout and stderr appended to ``log``, every other descriptor closed, and the command line of the
runner it stands for (``ps`` and the backend's pid checks see ``python -m shoal.runtime --workspace
W --job J --attempt N``). The child answers ``{"pid": N}`` itself, before it lets go of the answer
pipe: if this process dies between the fork and the answer, the backend still learns of the child
(it reads the pipe to its end) and never starts the job twice.

It answers ``{"cold": "why"}`` instead of forking when the child could not be what a fresh
interpreter would be: the request's ``PYTHON*``/``LD_*`` variables differ from those this process
started with (they act at interpreter start), or this process has a thread or a socket (fork
safety: nothing here starts one, and this is checked before every fork). The backend then starts
that job cold. Forked children are reaped here (SIGCHLD ignored), and restored to the default in
each child. What a fork shares that a new interpreter would draw afresh: the string hash seed (the
runner depends on no set or dict order of strings; ``random`` reseeds itself in a forked child). The
process exits when its stdin closes: the server stopped or went away; its children
are in sessions of their own and live on, like cold runners. A request with ``"die_with_parent":
true`` (a Ray node's agent, ``compute/ray_agent.py``) makes a child that is SIGKILLed when this
process dies instead, as the agent's runners die with the agent.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from typing import Any

import shoal.runtime.__main__ as runner

# What a runner imports later, in run(): its job's sandbox and network, environments (filelock,
# uv), system metrics (psutil), the resolver of ${{...}}, the IDNA codec of its first request.
PRELOAD = (
    "shoal.entities.expressions",
    "shoal.envs",
    "shoal.compute.sandbox",
    "shoal.compute.job_network",
    "shoal.runtime.confine",
    "shoal.runtime.sysmetrics",
    "psutil",
    "filelock",
    "uv",
    "encodings.idna",
    "decimal",
    "logging",
    "platform",
    "secrets",
    "sysconfig",
)

STARTUP_PREFIXES = ("PYTHON", "LD_")  # read at interpreter or loader start: a fork cannot change them
NAME = "shoal.runtime.warm"
PR_SET_PDEATHSIG = 1


def _startup(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES)}


class _Title:
    """The process's command line as /proc shows it: the bytes between the kernel's ``arg_start``
    and ``arg_end``, which a process may overwrite in place (what setproctitle does). The backend
    starts this process with an argument of padding (``WARM_TITLE_ROOM`` spaces), so a child can take its runner's
    command line; this process shows ``python -m shoal.runtime.warm``. Best effort: where /proc
    or ctypes refuse, titles stay as they are."""

    def __init__(self) -> None:
        self.start = self.size = 0
        try:
            fields = open("/proc/self/stat", "rb").read().rsplit(b")", 1)[1].split()  # noqa: SIM115
            self.start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
            self.size = end - self.start
        except (OSError, ValueError, IndexError):
            pass

    def set(self, argv: list[str]) -> bool:
        """Show ``argv`` (cut to the room there is); whether /proc now shows it."""
        if self.size <= 1:
            return False
        data = b"\0".join(os.fsencode(a) for a in argv)[: self.size - 1]
        data += b"\0" * (self.size - len(data))  # ends on NUL: /proc reads exactly this region
        try:
            import ctypes

            ctypes.memmove(self.start, data, self.size)
            with open("/proc/self/cmdline", "rb") as fh:
                return fh.read() == data
        except (OSError, ValueError, ImportError):
            return False


def _refusal(request: dict[str, Any], startup: dict[str, str]) -> str | None:
    """Why this request must start cold (None: fork it)."""
    env = request.get("env")
    if not isinstance(env, dict) or not isinstance(request.get("argv"), list) or len(request["argv"]) < 3:
        return "malformed request"
    if _startup(env) != startup:
        return "the runner's PYTHON*/LD_* variables differ from the warm runner's"
    try:
        if len(os.listdir("/proc/self/task")) != 1:
            return "the warm runner has threads"
        for fd in os.listdir("/proc/self/fd"):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                return "the warm runner has an open socket"
    except OSError:
        pass  # no /proc: nothing to check with
    return None


def _answer(message: dict[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def serve(title: _Title, titled: bool) -> dict[str, Any] | None:
    """Fork a child per request; returns only in a child (its request), or None when stdin ends."""
    startup = _startup(os.environ)
    _answer({"ready": True, "pid": os.getpid(), "titled": titled})
    pending = b""
    bound: list[int] = []  # children that die with this process
    while True:
        while b"\n" not in pending:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                _outlive(bound)
                return None  # the server went away
            pending += chunk
        line, _, pending = pending.partition(b"\n")
        try:
            request = json.loads(line)
        except ValueError:
            request = {}
        why = _refusal(request, startup) if isinstance(request, dict) else "malformed request"
        if why is not None:
            _answer({"cold": why})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            _answer({"cold": f"fork failed: {exc}"})
            continue
        if pid == 0:
            if request.get("die_with_parent"):
                _die_with(parent)
            return _become(request, title)
        if request.get("die_with_parent"):
            bound = [p for p in bound if _alive(p)] + [pid]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _outlive(bound: list[int]) -> None:
    """Asked to end (stdin closed) with children that die with this process: wait for them (their
    own parent, the agent, still lives: it would have SIGKILLed this process with it)."""
    while any(_alive(p) for p in bound):
        time.sleep(0.5)


def _die_with(parent: int) -> None:
    """In the child: SIGKILL when this warm process dies (``PR_SET_PDEATHSIG``); gone already: exit."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)  # it died before the signal was armed: no answer, the job starts cold


def _become(request: dict[str, Any], title: _Title) -> dict[str, Any]:
    """In the child: take the job's session, folder, environment and log, then answer."""
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        null = os.open(os.devnull, os.O_RDONLY)
        os.chdir(request["cwd"])
    except (OSError, KeyError, TypeError) as exc:
        _answer({"cold": f"the forked runner could not start: {exc}"})
        os._exit(1)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    os.dup2(null, 0)
    # Before the answer: once the backend has the pid, /proc must show a runner there.
    title.set([str(a) for a in request["argv"]])
    _answer({"pid": os.getpid()})
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    return request


def run(request: dict[str, Any]) -> int:
    """What ``argv`` names, in this (forked) interpreter."""
    argv = [str(a) for a in request["argv"]]
    if argv[1:3] == ["-m", "shoal.runtime"]:
        sys.argv = [runner.__file__ or "-m", *argv[3:]]
        sys.path[0] = os.getcwd()  # as `python -m` sets it in the runner's folder
        return runner.main(argv[3:])
    if argv[1] == "-c":
        sys.argv = ["-c", *argv[3:]]
        sys.path[0] = ""
        exec(compile(argv[2], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102
        return 0
    print(f"[shoal] the warm runner cannot start {argv[:3]}", file=sys.stderr)
    return 2


def main() -> int:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional dependency: the runner does without it too
    title = _Title()
    titled = title.set([sys.executable, "-m", NAME])
    # Children are reaped as they exit (the backend polls them by pid); Ctrl-C at the server's
    # terminal ends the server, whose closed pipe ends this process.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    request = serve(title, titled)
    if request is None:
        return 0
    return run(request)


if __name__ == "__main__":
    sys.exit(main())
