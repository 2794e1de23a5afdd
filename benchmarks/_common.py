"""Shared helpers for the benchmarks: start/stop servers, statistics, and docs/benchmarks.md sections.

Not a test helper: benchmarks measure, they do not assert speed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"

INTRO = """# Benchmarks

Speed is measured here, not asserted in tests. Each script in `benchmarks/` starts Shoal (and, where
one is installed, the peer a user would otherwise pick) on 127.0.0.1, measures both in the same run,
and rewrites only its own section of this file, between `<!-- name:begin -->` and `<!-- name:end -->`.

- Run one with `.venv/bin/python benchmarks/<name>.py` (see `benchmarks/README.md`).
- Figures are medians (with p95 where shown) of many samples; ratios compare runs made minutes apart
  on the same machine. The reference machine is shared and noisy (2 cores, client and servers on the
  same cores): medians move by 25-35 % between runs, so read ratios, not the third digit.
- Each section states the machine, date and Python version of the run that wrote it.
"""


# -- statistics ----------------------------------------------------------------------------------


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def p95(samples: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    """Seconds as milliseconds with a precision that suits the size."""
    if math.isnan(seconds):
        return "—"
    value = seconds * 1000
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- machine -------------------------------------------------------------------------------------


def machine() -> str:
    mem_gib = math.nan
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    return (
        f"{os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {platform.system()} {platform.machine()}, "
        f"CPython {platform.python_version()}"
    )


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "—"


# -- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], *, group: bool) -> None:
    """SIGTERM the process (or the session it leads, which we created), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    send = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    with contextlib.suppress(ProcessLookupError):
        send(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            send(signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Server:
    url: str
    headers: dict[str, str]
    pid: int
    start_s: float
    home: Path


@contextlib.contextmanager
def shoal_server(tmp: Path, *, database_url: str | None = None) -> Iterator[Server]:
    """A real ``python -m shoal.server.main`` process with its own SHOAL_HOME, ``tmp/shoal-home``
    (which a caller may have filled beforehand), on SQLite there or on ``database_url``."""
    home = tmp / "shoal-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "SHOAL_HOME": str(home)}
    for key in ("SHOAL_DATABASE_URL", "SHOAL_ARTIFACT_ROOT", "SHOAL_SERVER_URL", "SHOAL_TOKEN"):
        env.pop(key, None)
    if database_url:
        env["SHOAL_DATABASE_URL"] = database_url
    log = (tmp / "shoal-server.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.server.main", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    try:
        server_file = home / "server.json"
        deadline = time.monotonic() + 60
        info = None
        while info is None:
            if proc.poll() is not None:
                raise RuntimeError(f"shoal server exited with {proc.returncode}; see {tmp}/shoal-server.log")
            if time.monotonic() > deadline:
                raise RuntimeError("shoal server did not write server.json within 60 s")
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(server_file.read_text())
            if info is None:
                time.sleep(0.05)
        start_s = time.perf_counter() - started
        token = (home / "token").read_text().strip()
        yield Server(info["url"], {"Authorization": f"Bearer {token}"}, proc.pid, start_s, home)
    finally:
        _stop(proc, group=False)
        log.close()


def find_executable(name: str, explicit: str | None, env_var: str) -> str | None:
    """A peer's executable: the explicit path, ``$env_var``, beside this Python, then PATH."""
    for candidate in (explicit, os.environ.get(env_var), str(Path(sys.executable).parent / name), shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_mlflow(explicit: str | None) -> str | None:
    """The ``mlflow`` executable: --mlflow, $SHOAL_BENCH_MLFLOW, this venv's, then PATH."""
    return find_executable("mlflow", explicit, "SHOAL_BENCH_MLFLOW")


def find_ray(explicit: str | None) -> str | None:
    """The ``ray`` executable: --ray, $SHOAL_BENCH_RAY, beside this Python, then PATH."""
    return find_executable("ray", explicit, "SHOAL_BENCH_RAY")


def mlflow_version(exe: str) -> str:
    python = Path(exe).parent / "python"
    try:
        out = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def wait_until_answers(
    proc: subprocess.Popen[bytes], url: str, what: str, log: Path, *, limit: float, every: float = 0.2
) -> None:
    """Wait until ``url`` answers 200; fail early, naming the log, if the process exits first."""
    deadline = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {limit:.0f} s")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(every)


@contextlib.contextmanager
def mlflow_server(
    exe: str, tmp: Path, *, proxied_artifacts: bool = False, backend_store_uri: str | None = None
) -> Iterator[Server]:
    """``mlflow server --workers 1`` on SQLite under ``tmp`` (or on ``backend_store_uri``), in its
    own session (stopped as a group).

    ``proxied_artifacts`` serves artifacts through MLflow's own proxy (``mlflow-artifacts:``
    URIs, ``--artifacts-destination``), the path Shoal's tracking API is compared with.

    One worker: the multi-worker default never sets TCP_NODELAY and stalls ~44 ms per request
    (uvicorn issue 3149), which would flatter Shoal. The background job
    runner (huey consumers, unrelated to the registry) is switched off so it does not compete for
    the two cores, and https sources are allowed so versions can reference a URL as Shoal's do.
    """
    home = tmp / "mlflow-home"
    home.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES": "https",
    }
    log = (tmp / "mlflow-server.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            exe,
            "server",
            "--backend-store-uri",
            backend_store_uri or f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination" if proxied_artifacts else "--default-artifact-root",
            str(home / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--uvicorn-opts",
            "--no-access-log",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(proc, url + "/health", "mlflow server", tmp / "mlflow-server.log", limit=120)
        yield Server(url, {}, proc.pid, time.perf_counter() - started, home)
    finally:
        _stop(proc, group=True)
        log.close()


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- docs/benchmarks.md --------------------------------------------------------------------------


def write_section(key: str, body: str, path: Path = DOCS) -> None:
    """Replace the text between ``<!-- key:begin -->`` and ``<!-- key:end -->`` (append if absent)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else INTRO
    if begin in text and end in text and text.index(begin) < text.index(end):
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
