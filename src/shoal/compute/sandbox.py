"""Job isolation: the user's command runs in a bubblewrap sandbox that shows it only its own files.

Job code is not trusted. Without isolation it runs as the server's own OS user, so it could read
the server's home (the admin ``token``, ``secret.key``, ``job-signing.key``, the SQLite database),
its parent's ``/proc/<pid>/environ`` and every other running job's ``SHOAL_JOB_TOKEN``. With
isolation the runner (trusted Shoal code, outside the sandbox) starts each rank of the command as
``bwrap … -- bash -c COMMAND``, whose view of the machine is built from nothing:

- a new root on tmpfs with read-only binds of the system (``SYSTEM_PATHS``: ``/usr``, ``/etc``,
  ``/opt``…), of ``/sys``, of the job's interpreter (its installation prefix and the cache of
  built environments) and of the folders an admin lists in ``SHOAL_JOB_READ_PATHS``;
- read-write binds of the job's own folders only (working folder, outputs, inputs, its Python
  layer, a home and a ``/tmp`` in its run folder); the run folder itself is not shown, so the
  ``user_pgids`` file the server trusts when it ends a job stays out of reach, and so does every
  other folder of ``SHOAL_HOME``;
- a new PID namespace (``/proc`` lists the job's processes only: neither the runner's nor the
  server's nor other jobs' environments can be read), a new IPC namespace, a minimal ``/dev``
  with the GPU devices that exist (``DEVICE_PATHS``), ``--die-with-parent``;
- the job token only in the job's own environment (it is the job's own credential: MLflow logging
  needs it, and it reaches the job's own run only).

The network is shared (the job talks to the server over HTTP), so whatever listens on the host
(a database with trust authentication, say) is reachable as before.

When the server runs as root, job code also runs as an unprivileged user (``SHOAL_JOB_USER``,
default ``nobody``): bwrap sets the sandbox up as root, keeps only the two capabilities needed to
change user, and ``setpriv`` drops to that user (no capabilities, ``no_new_privs``) before the
command runs; the runner gives that user the job's writable folders. As any other user, bwrap
needs unprivileged user namespaces and the job keeps that user's id inside its view.

``SHOAL_JOB_ISOLATION``: ``auto`` (default) isolates wherever bwrap works, and runs jobs without
isolation (with a warning in the server's log) where it does not; ``required`` refuses to start
the server where it does not; ``off`` runs job code as the server's user, unconfined.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.errors import InfraError

logger = logging.getLogger(__name__)

MODES = ("off", "auto", "required")
NETWORK_MODES = ("host", "server")
DEFAULT_MODE = "auto"
DEFAULT_JOB_USER = "nobody"
# What the backend tells its runners: the sandbox as JSON, absent when jobs run unconfined.
RUNNER_ENV = "SHOAL_SANDBOX"

# Read-only system folders every job sees (those that exist; a symlink such as /bin -> usr/bin
# on a merged-/usr system becomes the same symlink in the sandbox).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
# Folders some of /etc points into (systemd-resolved's resolv.conf), read-only where they exist.
SYSTEM_EXTRA = ("/run/systemd/resolve",)
# Accelerators: NVIDIA (and its capability nodes), DRM render nodes, AMD ROCm, InfiniBand.
DEVICE_PATHS = ("/dev/dri", "/dev/kfd", "/dev/infiniband", "/dev/nvidia-caps")
DEVICE_PREFIXES = ("nvidia",)
# Variables the dynamic loader and libc act on (glibc's list for setuid programs, and its tunables):
# set on bwrap itself they would run the job's code in bwrap, outside the sandbox, with the
# server's rights (LD_PRELOAD=<a library in the job's code>). They are set inside instead.
LOADER_VARIABLES = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TZDIR",
    }
)


class IsolationUnavailable(InfraError):
    """SHOAL_JOB_ISOLATION=required, and this machine cannot isolate job code."""


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _outermost(paths: Iterable[str]) -> list[str]:
    """``paths`` without those inside another one of them (one bind covers them)."""
    unique = sorted({os.path.normpath(p) for p in paths if p})
    kept: list[str] = []
    for p in unique:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def device_paths() -> list[str]:
    found = [p for p in DEVICE_PATHS if os.path.exists(p)]
    try:
        found += sorted(f"/dev/{n}" for n in os.listdir("/dev") if n.startswith(DEVICE_PREFIXES))
    except OSError:
        pass
    return found


@dataclass(frozen=True)
class Sandbox:
    """How to start a job's processes confined: ``bwrap`` and, where the server is root, the user."""

    bwrap: str
    uid: int | None = None  # run job code as this user (the server is root); None: as the server's user
    gid: int | None = None
    setpriv: str | None = None
    read_paths: tuple[str, ...] = field(default_factory=tuple)
    # Folders never shown, even inside a system or read path (the server's home, say).
    hide: tuple[str, ...] = field(default_factory=tuple)
    # SHOAL_JOB_NETWORK: "host" (the host's network) or "server" (a namespace of the job's own
    # where the Shoal server is the only address: compute/job_network.py).
    network: str = "host"

    # -- passing it to the runner -------------------------------------------------------------

    def to_env(self) -> str:
        return json.dumps(
            {
                "bwrap": self.bwrap,
                "uid": self.uid,
                "gid": self.gid,
                "setpriv": self.setpriv,
                "read": self.read_paths,
                "hide": self.hide,
                "network": self.network,
            }
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Sandbox | None:
        value = (os.environ if environ is None else environ).get(RUNNER_ENV)
        if not value:
            return None
        data = json.loads(value)
        return cls(
            data["bwrap"],
            data.get("uid"),
            data.get("gid"),
            data.get("setpriv"),
            tuple(data.get("read") or ()),
            tuple(data.get("hide") or ()),
            data.get("network") or "host",
        )

    # -- starting a command in it -------------------------------------------------------------

    def argv(
        self,
        command: Sequence[str],
        *,
        cwd: str | Path,
        writable: Iterable[str | Path] = (),
        readable: Iterable[str | Path] = (),
        tmp: str | Path | None = None,
        setenv: Sequence[str] = (),
    ) -> list[str]:
        """``command`` wrapped in bwrap: the system read-only, ``readable`` read-only, ``writable``
        read-write, ``tmp`` as ``/tmp`` (else an empty tmpfs), a new PID and IPC namespace.
        Folders are shown at their own paths; the folders above them are empty ones of the sandbox.
        ``setenv``: ``NAME=VALUE`` set right before ``command``, by ``env`` (``move_loader_variables``)."""
        args = [self.bwrap, "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
        if self.uid is not None:
            # bwrap is root here: it builds the view, then setpriv (below) drops to the job's user.
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        # Mount roots in the sandbox -> "ro" (a read-only bind: what lies below exists already) or
        # "new" (a tmpfs or writable bind: folders below must be made).
        mounts: dict[str, str] = {"/": "new"}

        def under(path: str, root: str) -> bool:
            return path == root or path.startswith(root.rstrip("/") + "/")

        def cover(path: str) -> str:
            return mounts[max((m for m in mounts if under(path, m)), key=len)]

        def parents(target: str) -> None:
            # bwrap makes missing parents 0700 (root's): the job's user could not walk through them.
            for parent in _ancestors(target):
                if parent not in mounts and cover(parent) == "new" and parent not in made:
                    made.add(parent)
                    args.extend(["--perms", "0755", "--dir", parent])

        made: set[str] = set()
        for path in SYSTEM_PATHS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
                mounts[path] = "ro"
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
                mounts[path] = "ro"
        args += ["--ro-bind", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev"]
        mounts.update({"/sys": "ro", "/proc": "ro", "/dev": "ro"})
        for dev in device_paths():
            args += ["--dev-bind", dev, dev]
        extra = [p for p in (*SYSTEM_EXTRA, *self.read_paths) if os.path.exists(p)]
        readable = _outermost([*map(str, readable), *extra])
        writable = _outermost(map(str, writable))
        # /tmp: the job's own folder, unless a folder to show lies under /tmp (a test's home), which
        # a bind over /tmp would hide: then an empty tmpfs, mounted first. bwrap (root, perhaps)
        # never makes mount points inside a folder job code can write: another rank's job code
        # could have left a symlink there.
        under_tmp = any(under(p, "/tmp") for p in (*readable, *writable))
        if tmp is None or under_tmp:
            args += ["--perms", "1777", "--tmpfs", "/tmp"]
        mounts["/tmp"] = "new"
        # Read-only binds and hidden folders (the server's home inside /opt or a read path, say),
        # outer ones first, so that a hidden folder covers what a bind above it showed.
        shown = (*SYSTEM_PATHS, *readable)
        hidden = [p for p in _outermost(self.hide) if os.path.isdir(p) and any(under(p, m) for m in shown)]
        steps = sorted(
            [(p, "ro") for p in readable] + [(p, "hide") for p in hidden], key=lambda s: len(Path(s[0]).parts)
        )
        for path, kind in steps:
            if kind == "ro" and cover(path) == "ro" and not any(under(path, h) for h in hidden):
                continue  # already shown by a bind above it
            parents(path)
            args += ["--ro-bind", path, path] if kind == "ro" else ["--tmpfs", path]
            mounts[path] = "ro" if kind == "ro" else "new"
        for path in writable:
            parents(path)
            args += ["--bind", path, path]
            mounts[path] = "new"
        if tmp is not None and not under_tmp:
            args += ["--bind", str(tmp), "/tmp"]
        args += ["--chdir", str(cwd), "--"]
        if self.uid is not None:
            args += [
                self.setpriv or "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--",
            ]
        if setenv:
            args += [shutil.which("env") or "/usr/bin/env", *setenv]
        return args + list(command)

    def confine_build(self, argv: list[str], *, cwd: Path, writable: list[Path], readable: list[Path]) -> list[str]:
        """``argv`` of an environment build step (a requirement's build backend is job code) in
        the sandbox: ``writable`` (the environment being built, the build cache) given to the job's
        user, ``readable`` (uv, the base interpreter) read-only; the network as for jobs."""
        self.give(writable, skip_owned=True)
        shown = [str(p) for p in readable if os.path.exists(p)]
        return self.argv(argv, cwd=cwd, writable=[str(p) for p in writable], readable=shown)

    @staticmethod
    def move_loader_variables(env: dict[str, str]) -> list[str]:
        """Take the loader's variables (``LD_*``, ``LOADER_VARIABLES``) out of ``env``, the
        environment bwrap is started with, and return them as ``NAME=VALUE`` for ``argv``'s
        ``setenv``: set by ``env`` as the job's user, right before the command, they act on the
        job's own processes only (neither on bwrap nor on setpriv, which run with privileges)."""
        moved = sorted(k for k in env if k.startswith("LD_") or k in LOADER_VARIABLES)
        return [f"{name}={env.pop(name)}" for name in moved]

    def give(self, paths: Iterable[str | Path], *, skip_owned: bool = False) -> None:
        """Make ``paths`` (folders, with all they hold) the job user's, where job code runs as another user.
        ``skip_owned``: leave a folder the job user owns already as it is (what it made there is its own)."""
        if self.uid is None:
            return
        for top in paths:
            top = Path(top)
            if not top.exists() or (skip_owned and top.stat().st_uid == self.uid):
                continue
            os.lchown(top, self.uid, self.gid if self.gid is not None else -1)
            for root, dirs, files in os.walk(top):
                for name in (*dirs, *files):
                    os.lchown(os.path.join(root, name), self.uid, self.gid if self.gid is not None else -1)

    def check(self) -> str | None:
        """Why the host's Python cannot run in this sandbox (None: it can). Jobs' interpreters are
        this one or environments built on it, so a job user who cannot read it fails here, not later."""
        python = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
        argv = self.argv([python, "-I", "-S", "-c", ""], cwd="/", readable=[str(Path(python).parent.parent)])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{self.bwrap} could not run: {exc}"
        if done.returncode != 0:
            return f"a sandboxed {python} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:300]}"
        return None


def job_user(spec: str | None) -> tuple[int, int]:
    """``SHOAL_JOB_USER``: a user name, or ``uid`` / ``uid:gid``; never root."""
    spec = (spec or DEFAULT_JOB_USER).strip()
    uid_text, _, gid_text = spec.partition(":")
    if uid_text.isdigit():
        uid = int(uid_text)
        gid = int(gid_text) if gid_text.isdigit() else uid
    else:
        import pwd  # POSIX only; only a root server on Linux gets here

        try:
            entry = pwd.getpwnam(uid_text)
        except KeyError:
            if spec == DEFAULT_JOB_USER:
                return 65534, 65534  # the conventional nobody, where /etc/passwd lacks it
            raise IsolationUnavailable(
                f"SHOAL_JOB_USER={spec!r}: no such user", details={"setting": "SHOAL_JOB_USER"}
            ) from None
        uid, gid = entry.pw_uid, int(gid_text) if gid_text.isdigit() else entry.pw_gid
    if uid == 0 or gid == 0:
        raise IsolationUnavailable(
            f"SHOAL_JOB_USER={spec!r}: job code must not run as root", details={"setting": "SHOAL_JOB_USER"}
        )
    return uid, gid


def resolve(
    mode: str | None = None,
    *,
    user: str | None = None,
    read_paths: str | Sequence[str] | None = None,
    hide: Sequence[str | Path] = (),
    network: str | None = None,
) -> Sandbox | None:
    """The sandbox jobs run in under ``mode`` (``SHOAL_JOB_ISOLATION``), or None for unconfined.

    ``auto`` probes bwrap once (a few milliseconds) and falls back to unconfined with a warning;
    ``required`` raises ``IsolationUnavailable`` saying why; ``off`` never probes. ``network``
    (``SHOAL_JOB_NETWORK``): ``server`` asks for a network namespace per job, which needs the
    sandbox: a server that cannot give one refuses to start rather than run jobs on the host's
    network."""
    mode = (mode or DEFAULT_MODE).strip().lower()
    if mode not in MODES:
        raise IsolationUnavailable(
            f"SHOAL_JOB_ISOLATION={mode!r} is not one of {', '.join(MODES)}",
            details={"setting": "SHOAL_JOB_ISOLATION", "allowed": list(MODES)},
        )
    network = (network or "host").strip().lower()
    if network not in NETWORK_MODES:
        raise IsolationUnavailable(
            f"SHOAL_JOB_NETWORK={network!r} is not one of {', '.join(NETWORK_MODES)}",
            details={"setting": "SHOAL_JOB_NETWORK", "allowed": list(NETWORK_MODES)},
        )
    if network == "server":
        if mode == "off":
            raise IsolationUnavailable(
                "SHOAL_JOB_NETWORK=server needs job isolation, but SHOAL_JOB_ISOLATION=off",
                details={"setting": "SHOAL_JOB_NETWORK"},
            )
        if shutil.which("nsenter") is None:
            raise IsolationUnavailable(
                "SHOAL_JOB_NETWORK=server needs `nsenter` (util-linux) on PATH",
                details={"setting": "SHOAL_JOB_NETWORK"},
            )
        mode = "required"
    if mode == "off":
        return None
    if isinstance(read_paths, str):
        read_paths = [p for p in read_paths.split(os.pathsep) if p.strip()]
    extra = tuple(os.path.realpath(p) for p in (read_paths or ()))
    problem = None
    sandbox = None
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        problem = "bubblewrap is not installed (no `bwrap` on PATH; Debian/Ubuntu: apt-get install bubblewrap)"
    else:
        uid = gid = None
        setpriv = None
        if getattr(os, "geteuid", lambda: -1)() == 0:
            uid, gid = job_user(user)
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                problem = "the server runs as root and `setpriv` (util-linux) is not on PATH"
        if problem is None:
            hidden = tuple(os.path.realpath(p) for p in hide)
            sandbox = Sandbox(bwrap, uid, gid, setpriv, extra, hidden, network)
            problem = sandbox.check()
    if problem is None:
        return sandbox
    if mode == "required":
        raise IsolationUnavailable(
            f"SHOAL_JOB_ISOLATION=required, but job code cannot be isolated here: {problem}",
            details={"setting": "SHOAL_JOB_ISOLATION"},
        )
    logger.warning("job code runs WITHOUT isolation (SHOAL_JOB_ISOLATION=auto): %s", problem)
    return None
