"""EnvBuilder: an EnvSpec becomes a Python interpreter, building a cached virtual environment when needed.

Layout of the cache, one directory per spec hash::

    <cache_dir>/<hash>.lock          file lock: one build per hash across threads and processes
    <cache_dir>/<hash>/venv/         the virtual environment (uv venv + uv pip install)
    <cache_dir>/<hash>/build.log     everything uv printed while building
    <cache_dir>/<hash>/shoal-env.json  the marker, written last: the build is complete

A directory without the marker is a crashed or failed build and is rebuilt from scratch, so a
failed build never poisons a later one.

The host interpreter. Jobs on a "host" environment (``python:3.11``, an image without a conda
file, or a minimal curated one) run in a *clean* virtual environment of ``host_python`` with
nothing installed (``uv venv``, no system site-packages), built once per interpreter under
``<cache_dir>/clean-<hash>/`` with the same lock and marker as any other build: a job sees the
standard library only, as in a bare ``python`` image, never the host's packages nor Shoal's
(fastapi, httpx, pydantic...). Its own ``pip install`` goes into its layer on top
(:meth:`PreparedEnv.layered`). ``host_python`` defaults to the *base* interpreter Shoal's own
virtual environment was made from (``sys._base_executable``); ``isolate_host=False`` runs such
jobs on ``host_python`` itself, with whatever it has installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol, TextIO

from shoal.envs import pyver
from shoal.envs.errors import EnvironmentBuildError
from shoal.envs.spec import EnvSpec
from shoal.envs.uvtool import RunResult, find_uv, run_streaming

MARKER = "shoal-env.json"
# uv's cache for builds in the job sandbox, under the environment cache.
BUILD_CACHE = ".uv-build-cache"
BUILD_LOG = "build.log"
VENV_DIR = "venv"

LogSink = TextIO | Callable[[str], None] | None


class BuildConfinement(Protocol):
    """Wraps a build command to run it in the job sandbox (``compute/sandbox.Sandbox.confine_build``):
    ``writable`` and ``readable`` folders shown, nothing else of the server's."""

    def __call__(self, argv: list[str], *, cwd: Path, writable: list[Path], readable: list[Path]) -> list[str]: ...


# `pip` in a job's layer: pip from the layer or the environment under it, else ensurepip's into the layer.
_PIP_SHIM = """\
import importlib, runpy, subprocess, sys
try:
    import pip
except ImportError:
    done = subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit("pip: this environment has no pip, and ensurepip could not install one")
    importlib.invalidate_caches()
sys.argv[0] = "pip"
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""


def default_host_python() -> Path:
    """The interpreter for "host" environments: the base interpreter when Shoal runs in a venv (see module doc)."""
    if sys.prefix != sys.base_prefix:
        base = getattr(sys, "_base_executable", None)
        if base and Path(base).exists():
            return Path(base)
    return Path(sys.executable)


@dataclass(frozen=True)
class PreparedEnv:
    """A ready interpreter. ``reused`` is False only for the call that built it (a host env is never built)."""

    python: Path
    bin_dir: Path | None  # the venv's bin/; None for the host interpreter
    hash: str
    reused: bool
    build_log_path: Path | None
    spec: EnvSpec
    shared_bin: Path | None = None  # a layer's: the cached environment's bin/, on PATH after the layer's

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Process variables that make ``python`` on PATH this interpreter (for a job's command line)."""
        env = dict(os.environ if base is None else base)
        env.pop("PYTHONHOME", None)
        env.pop("VIRTUAL_ENV", None)
        first = self.bin_dir or self.python.parent
        if self.shared_bin is not None:
            first = f"{first}{os.pathsep}{self.shared_bin}"
        env["PATH"] = f"{first}{os.pathsep}{env['PATH']}" if env.get("PATH") else str(first)
        if self.bin_dir is not None:
            env["VIRTUAL_ENV"] = str(self.bin_dir.parent)
        return env

    def layered(self, root: Path) -> PreparedEnv:
        """This built environment behind a job's own layer at ``root``, where its ``pip install`` goes.

        A cached environment is shared by every job of the same spec (a sweep's trials run at once),
        and in Azure ML each job has its own container: a command's ``pip install`` must change
        neither the cache nor, through PATH, whatever ``pip`` comes next (Shoal's own venv). The
        layer is a virtual environment on the same base interpreter whose site-packages come first
        and whose ``.pth`` adds the cached site-packages after them; pip run there installs what it
        is asked for into the layer and leaves the cached packages alone ("outside environment").
        ``pip`` bootstraps itself into the layer (ensurepip) the first time a command runs it.
        Host interpreters are returned as they are.
        """
        if self.bin_dir is None:
            return self
        venv = self.bin_dir.parent
        shared_site = next(iter(sorted((venv / "lib").glob("python3*/site-packages"))), None)
        if shared_site is None:
            return self
        site = root / "lib" / shared_site.parent.name / "site-packages"
        site.mkdir(parents=True, exist_ok=True)
        (site / "_shoal_environment.pth").write_text(
            f"import site; site.addsitedir({str(shared_site)!r})\n", encoding="utf-8"
        )
        shutil.copyfile(venv / "pyvenv.cfg", root / "pyvenv.cfg")
        bin_dir = root / "bin"
        bin_dir.mkdir(exist_ok=True)
        for exe in self.bin_dir.glob("python*"):
            link = bin_dir / exe.name
            if not link.exists() and exe.is_file():
                link.symlink_to(os.path.realpath(exe))
        python = bin_dir / "python"
        # One line that execs at once: ensurepip replaces this very file with pip's own script.
        shim = f'#!/bin/sh\nexec {shlex.quote(str(python))} -c {shlex.quote(_PIP_SHIM)} "$@"\n'
        for name in ("pip", "pip3", f"pip{shared_site.parent.name.removeprefix('python')}"):
            (bin_dir / name).write_text(shim, encoding="utf-8")
            (bin_dir / name).chmod(0o755)
        return replace(self, python=python, bin_dir=bin_dir, shared_bin=self.bin_dir)


class EnvBuilder:
    """Prepares environments into ``cache_dir``; safe to share between threads and between processes.

    ``uv``: the uv executable (default: found on PATH, beside this Python, or ``python -m uv``).
    ``host_python``: the interpreter for host environments and the base of built ones (module doc).
    ``uv_cache_dir``: uv's package cache (default: uv's own, so every build shares downloads).
    ``offline_first``: install from uv's cache without network first, and go online only if that fails.
    ``install_python``: when a spec asks for a Python that neither the host nor ``uv python find``
    provides, try ``uv python install`` (needs network access to python-build-standalone).
    ``python_mismatch``: "error" fails such a build; "host" builds on the host Python anyway, with a warning.
    ``isolate_host``: host environments get a clean venv of ``host_python`` (module doc), not the interpreter itself.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        uv: str | os.PathLike[str] | None = None,
        host_python: str | os.PathLike[str] | None = None,
        uv_cache_dir: str | os.PathLike[str] | None = None,
        offline_first: bool = True,
        install_python: bool = True,
        python_mismatch: Literal["error", "host"] = "error",
        timeout_s: float = 1800.0,
        isolate_host: bool = True,
        confine: BuildConfinement | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.host_python = Path(host_python) if host_python else default_host_python()
        self.uv_cache_dir = Path(uv_cache_dir) if uv_cache_dir else None
        self.offline_first = offline_first
        self.install_python = install_python
        self.python_mismatch = python_mismatch
        self.timeout_s = timeout_s
        self.isolate_host = isolate_host
        self.confine = confine
        self.builds_started = 0  # builds this builder ran (not reuses): for tests and metrics
        self._uv_explicit = uv
        self._uv_cmd: list[str] | None = None
        self._host_version: pyver.Version | None = None
        self._link_args: list[str] | None = None
        self._mutex = threading.Lock()

    # --- public -------------------------------------------------------------------------------

    def prepare(self, spec: EnvSpec, log: LogSink = None) -> PreparedEnv:
        """The interpreter for ``spec``, building its environment first unless a complete one is cached."""
        sink = _as_sink(log)
        digest = spec.spec_hash()
        if self._runs_on_host(spec):
            if not self.isolate_host:
                sink(f"environment: {spec.source or 'host'} -> host Python {self.host_python}")
                return PreparedEnv(self.host_python, None, digest, True, None, spec)
            return self._clean_host(spec, digest, sink)
        root = self.cache_dir / digest
        if _complete(root):
            sink(f"environment: {spec.source} -> cached {root}")
            return self._prepared(spec, digest, root, reused=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.cache_dir / f"{digest}.lock"):
            if _complete(root):
                # Another thread or process built it while this one waited: show the job that log too.
                sink(f"environment: {spec.source} -> built meanwhile by another job at {root}; its build log:")
                _replay(root / BUILD_LOG, sink)
                return self._prepared(spec, digest, root, reused=True)
            self._build(spec, digest, root, sink)
        return self._prepared(spec, digest, root, reused=False)

    def _clean_host(self, spec: EnvSpec, digest: str, sink: Callable[[str], None]) -> PreparedEnv:
        """A venv of the host interpreter with nothing in it, built once per interpreter and shared."""
        version = ".".join(map(str, self._host_py_version()))
        key = hashlib.sha256(f"{os.path.realpath(self.host_python)}\n{version}".encode()).hexdigest()[:16]
        root = self.cache_dir / f"clean-{key}"
        what = f"{spec.source or 'host'} -> a clean venv of {self.host_python} ({version}); nothing installed"
        reused = True
        if not _complete(root):
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with _file_lock(self.cache_dir / f"clean-{key}.lock"):
                if not _complete(root):
                    clean = EnvSpec.host(f"clean venv of {self.host_python} ({version})")
                    self._build(clean, f"clean-{key}", root, lambda line: None)
                    reused = False
        sink(f"environment: {what} ({root})")
        return replace(self._prepared(spec, digest, root, reused=reused), build_log_path=root / BUILD_LOG)

    def path_for(self, spec: EnvSpec) -> Path:
        return self.cache_dir / spec.spec_hash()

    # --- building -------------------------------------------------------------------------------

    def _build(self, spec: EnvSpec, digest: str, root: Path, sink: Callable[[str], None]) -> None:
        with self._mutex:
            self.builds_started += 1
        if root.exists():
            sink(f"environment: removing the incomplete build at {root}")
            shutil.rmtree(root)
        root.mkdir(parents=True)
        log_path = root / BUILD_LOG
        started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as fh:

            def tee(line: str) -> None:
                fh.write(line + "\n")
                fh.flush()
                sink(line)

            tee(f"# shoal: building environment {digest} for {spec.source}")
            tee(f"# requirements: {' '.join(spec.requirements) or '(none)'}")
            for extra, value in (("python", spec.python), ("torch backend", spec.torch_backend)):
                if value:
                    tee(f"# {extra}: {value}")
            for note in spec.notes:
                tee(f"# note: {note}")
            base = self._base_python(spec, digest, log_path, tee)
            venv = root / VENV_DIR
            uv = self._uv()
            self._step(
                spec,
                digest,
                log_path,
                tee,
                "creating the virtual environment",
                [*uv, "venv", "--no-project", "--python", str(base), str(venv)],
            )
            if spec.requirements:
                self._install(spec, digest, log_path, tee, venv)
            tee(f"# shoal: environment ready in {time.monotonic() - started:.2f} s")
        marker = {
            "hash": digest,
            "spec": spec.to_dict(),
            "python": str(_venv_python(root)),
            "base_python": str(base),
            "built_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.monotonic() - started, 3),
        }
        tmp = root / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, root / MARKER)  # last, and atomic: its presence means the build is whole

    def _install(self, spec: EnvSpec, digest: str, log_path: Path, tee: Callable[[str], None], venv: Path) -> None:
        """``uv pip install`` the requirements. A source distribution's build backend is code from
        the requirements (job code): with ``confine``, wheels are installed here with ``--no-build``
        (uv runs no package code then), and only if that fails does the install run again inside
        the job sandbox, where building can run that code without reaching the server's files."""
        options = [*spec.pip_options, *(["--torch-backend", spec.torch_backend] if spec.torch_backend else [])]
        python = str(venv / "bin" / "python")
        cmd = [*self._uv(), "pip", "install", "--python", python, *self._link_mode(), *options]
        if self.confine is not None:
            cmd.append("--no-build")
        result = self._attempts([*cmd, "--", *spec.requirements], tee, self._uv_env(), venv.parent)
        if result.returncode == 0:
            return
        if self.confine is not None:
            tee("# shoal: some requirements are built from source: building them in the job sandbox")
            result = self._confined_install(spec, options, tee, venv)
            if result.returncode == 0:
                return
        self._fail(spec, digest, log_path, "installing the requirements", result.tail, result.timed_out)

    def _attempts(self, cmd: list[str], tee: Callable[[str], None], env: dict[str, str], cwd: Path) -> RunResult:
        """Offline first (uv's cache), then with network access; the last attempt's result."""
        at = cmd.index("install") + 1
        attempts = [True, False] if self.offline_first else [False]
        for offline in attempts:
            tee(f"$ {' '.join(cmd)}" if not offline else f"$ {' '.join(cmd[:at])} --offline {' '.join(cmd[at:])}")
            argv = [*cmd[:at], "--offline", *cmd[at:]] if offline else cmd
            result = run_streaming(argv, sink=tee, env=env, cwd=cwd, timeout_s=self.timeout_s)
            if result.returncode == 0:
                return result
            if offline:
                tee("# shoal: uv's cache does not hold everything; trying again with network access")
        return result

    def _confined_install(self, spec: EnvSpec, options: list[str], tee: Callable[[str], None], venv: Path) -> RunResult:
        assert self.confine is not None
        # A cache of the sandbox's own: a build cannot plant files in the one trusted installs use.
        cache = self.cache_dir / BUILD_CACHE
        cache.mkdir(exist_ok=True)
        uv = self._uv()
        python = str(venv / "bin" / "python")
        cfg = venv / "pyvenv.cfg"
        saved = cfg.read_bytes()
        base = _venv_home(saved)
        readable = [Path(uv[0]).parent.parent, Path(os.path.realpath(uv[0])).parent.parent]
        if base is not None:
            readable += [base.parent, Path(os.path.realpath(base)).parent]
        env = {k: v for k, v in self._uv_env().items() if not k.startswith(("SHOAL_", "XDG_"))}
        env.update(UV_CACHE_DIR=str(cache), HOME="/tmp", TMPDIR="/tmp")
        cmd = [*uv, "pip", "install", "--python", python, "--link-mode", "copy", *options, "--", *spec.requirements]
        result = self._attempts(self.confine(cmd, cwd=venv, writable=[venv, cache], readable=readable), tee, env, venv)
        # The runner later copies pyvenv.cfg into each job's layer with its own rights: never a
        # file the build swapped (for a symlink to the server's token, say).
        cfg.unlink(missing_ok=True)
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(saved)
        return result

    def _step(
        self,
        spec: EnvSpec,
        digest: str,
        log_path: Path,
        tee: Callable[[str], None],
        what: str,
        cmd: list[str],
    ) -> None:
        tee(f"$ {' '.join(cmd)}")
        result = run_streaming(cmd, sink=tee, env=self._uv_env(), cwd=log_path.parent, timeout_s=self.timeout_s)
        if result.returncode != 0:
            self._fail(spec, digest, log_path, what, result.tail, result.timed_out)

    def _fail(
        self, spec: EnvSpec, digest: str, log_path: Path, what: str, tail: list[str], timed_out: bool = False
    ) -> None:
        lines = [line for line in tail if line.strip() and not line.startswith("# shoal")][-15:]
        why = f"timed out after {self.timeout_s:.0f} s" if timed_out else "failed"
        raise EnvironmentBuildError(
            f"environment {spec.source or digest[:12]} could not be built: {what} {why}:\n" + "\n".join(lines),
            details={
                "hash": digest,
                "build_log": str(log_path),
                "requirements": list(spec.requirements),
                "python": spec.python,
            },
        )

    # --- the interpreter -----------------------------------------------------------------------

    def _runs_on_host(self, spec: EnvSpec) -> bool:
        if spec.kind == "host":
            return True
        # Only a Python constraint and the host meets it: nothing to install, so no venv either.
        return not spec.requirements and pyver.satisfies(self._host_py_version(), spec.python)

    def _base_python(self, spec: EnvSpec, digest: str, log_path: Path, tee: Callable[[str], None]) -> Path:
        host_version = self._host_py_version()
        if pyver.satisfies(host_version, spec.python):
            return self.host_python
        host_text = ".".join(map(str, host_version))
        if self.python_mismatch == "host":
            tee(f"# warning: the spec asks for Python {spec.python}; building on the host Python {host_text} instead")
            return self.host_python
        assert spec.python is not None  # satisfies() is True without a constraint
        found = self._uv_find_python(spec.python)
        tail: list[str] = []
        if found is None and self.install_python:
            tee(f"# shoal: Python {spec.python} is not on this machine; asking uv to install it")
            cmd = [*self._uv(), "python", "install", spec.python]
            tee(f"$ {' '.join(cmd)}")
            env = self._uv_env()
            env.pop("UV_PYTHON_DOWNLOADS", None)  # the one step that may download an interpreter
            result = run_streaming(cmd, sink=tee, env=env, timeout_s=min(self.timeout_s, 600.0))
            tail = result.tail
            found = self._uv_find_python(spec.python) if result.returncode == 0 else None
        if found is None:
            tried = " nor install one" if self.install_python else " (installing one is switched off)"
            what = f"finding Python {spec.python} (the host Python is {host_text}; uv found no such interpreter{tried})"
            self._fail(spec, digest, log_path, what, tail)
        tee(f"# shoal: Python {spec.python} -> {found}")
        return found  # type: ignore[return-value]  # _fail raised otherwise

    def _uv_find_python(self, constraint: str) -> Path | None:
        result = subprocess.run(
            [*self._uv(), "python", "find", constraint],
            capture_output=True,
            text=True,
            env=self._uv_env(),
            timeout=60,
            check=False,
        )
        path = result.stdout.strip().splitlines()[-1] if result.returncode == 0 and result.stdout.strip() else ""
        return Path(path) if path else None

    def _host_py_version(self) -> pyver.Version:
        if self._host_version is None:
            here = {Path(sys.executable), Path(getattr(sys, "_base_executable", sys.executable))}
            if self.host_python in here:
                self._host_version = tuple(sys.version_info[:3])
            else:
                out = subprocess.run(
                    [str(self.host_python), "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if out.returncode != 0:
                    raise EnvironmentBuildError(
                        f"the host Python {self.host_python} does not run: {out.stderr.strip()[-500:]}"
                    )
                self._host_version = pyver.parse_version(out.stdout.strip())
        return self._host_version

    # --- uv ------------------------------------------------------------------------------------

    def _uv(self) -> list[str]:
        if self._uv_cmd is None:
            self._uv_cmd = find_uv(self._uv_explicit)
        return self._uv_cmd

    def _uv_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # uv must act on the interpreter it is given, never on the venv Shoal itself runs in.
        for var in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT"):
            env.pop(var, None)
        env["UV_PYTHON_DOWNLOADS"] = "never"
        env["UV_NO_PROGRESS"] = "1"
        env["NO_COLOR"] = "1"
        if self.uv_cache_dir is not None:
            env["UV_CACHE_DIR"] = str(self.uv_cache_dir)
        return env

    def _link_mode(self) -> list[str]:
        """uv hardlinks from its cache; across filesystems that fails, so copy there (and skip uv's warning)."""
        if self._link_args is None:
            args: list[str] = []
            cmd = [*self._uv(), "cache", "dir"]
            result = subprocess.run(cmd, capture_output=True, text=True, env=self._uv_env(), timeout=60, check=False)
            uv_cache = result.stdout.strip() if result.returncode == 0 else ""
            if uv_cache and _device(Path(uv_cache)) != _device(self.cache_dir):
                args = ["--link-mode", "copy"]
            self._link_args = args
        return self._link_args

    def _prepared(self, spec: EnvSpec, digest: str, root: Path, *, reused: bool) -> PreparedEnv:
        return PreparedEnv(_venv_python(root), root / VENV_DIR / "bin", digest, reused, root / BUILD_LOG, spec)


# --- helpers -------------------------------------------------------------------------------------


def _venv_home(pyvenv_cfg: bytes) -> Path | None:
    """The base interpreter's folder (``home = …``) of a venv's pyvenv.cfg."""
    for line in pyvenv_cfg.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return Path(value.strip())
    return None


def _venv_python(root: Path) -> Path:
    return root / VENV_DIR / "bin" / "python"


def _complete(root: Path) -> bool:
    # The venv's python is a symlink to its base: if that interpreter went away, rebuild.
    return (root / MARKER).is_file() and _venv_python(root).exists()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # A fresh lock object per call: it opens the file itself, so threads of one process wait for
    # each other as other processes do (flock on POSIX, LockFileEx on Windows). Imported here: a
    # job on a cached environment never locks, and the runner's start-up should not pay for it.
    from filelock import FileLock

    with FileLock(path):
        yield


def _replay(path: Path, sink: Callable[[str], None]) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                sink(line.rstrip("\n"))
    except FileNotFoundError:
        pass


def _device(path: Path) -> int:
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_dev
        except FileNotFoundError:
            continue
    return -1


def _as_sink(log: LogSink) -> Callable[[str], None]:
    """A log target as a function of one line: a text stream gets the line and a newline, a callable the line."""
    if log is None:
        return lambda line: None
    if hasattr(log, "write"):
        stream = log

        def write(line: str) -> None:
            stream.write(line + "\n")
            flush = getattr(stream, "flush", None)
            if flush:
                flush()

        return write
    return log  # type: ignore[return-value]
