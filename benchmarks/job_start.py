"""Starting a trivial job: how long from submitting it until the command's first output line?

    .venv/bin/python benchmarks/job_start.py [--samples 30] [--peer-samples 10] [--no-peers]

The command is ``python -c "import time; print('FIRST', 'LINE', time.time(), flush=True)"``: its
first line carries the moment it was printed, read on the same clock as the submit timestamp, so
"printed" figures have no polling error. "Seen" figures are when the submitter got the line (a
pipe, a log poll every 5 ms, or a CLI's own output). Paths, measured in interleaved rounds:

1. bare: the same command started with ``subprocess`` (exec of the interpreter jobs use, and
   through ``bash -c`` as the runner starts it) - the floor;
2. Shoal SDK, server warm, environment cached: ``MLClient().jobs.create_or_update(command(...))``
   in this long-lived process; once waiting quietly (a status GET every 100 ms), once polling
   ``jobs.read_log`` every 5 ms;
3. Shoal CLI: ``shoal job create --file job.yml`` (includes the CLI's Python start-up);

then, per Shoal SDK job, the breakdown from the job's recorded status times; the runner's start
through ``LocalBackend.submit``, forked warm and as a new process, and a cold start's imports;
capacity: 20 jobs on an ``amlcompute`` with ``max_instances: 2``.
Peers where installed (``--peer-samples`` each, they take seconds per sample): ``mlflow run
--env-manager local`` of an MLproject with the same entry point, and Ray Jobs on a local head node
(``JobSubmissionClient.submit_job`` and the ``ray job submit`` CLI). Every path runs the command on
the same interpreter (``python`` first on PATH). The run prints a table and rewrites only its own
section of ``docs/benchmarks.md`` (``<!-- job_start:begin -->`` ... ``<!-- job_start:end -->``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    DOCS,
    Server,
    find_mlflow,
    find_ray,
    free_port,
    load_average,
    machine,
    median,
    mlflow_version,
    ms,
    p95,
    ratio,
    scratch,
    shoal_server,
    today,
    wait_until_answers,
    write_section,
)

CODE = "import time; print('FIRST', 'LINE', time.time(), flush=True)"
COMMAND = f'python -c "{CODE}"'
MARK = "FIRST LINE "  # the source says 'FIRST', 'LINE': a log that echoes the command cannot match
CAPACITY_CODE = (
    "import time; print('start', time.time(), flush=True); time.sleep(0.5); print('end', time.time(), flush=True)"
)
CAPACITY_JOBS = 20
CAPACITY_MAX = 2
TARGET_S = 0.250
TARGET_LOCAL_S = 0.060  # issue #11: the local backend's start overhead, with warm runners
ENV = {"image": "python:3.11"}
LOG = "user_logs/std_log.txt"
TERMINAL = ("Completed", "Failed", "Canceled")
STATES = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed")

BARE = "bare `python` (exec)"
BARE_SH = "bare `bash -c 'python …'` (as the runner starts it)"
SDK = "Shoal SDK, server warm (waits quietly)"
SDK_POLL = "Shoal SDK, polling `read_log` every 5 ms"
CLI = "Shoal CLI `shoal job create --file` (incl. CLI start-up)"
MLFLOW = "`mlflow run --env-manager local`"
RAY_SDK = "Ray Jobs SDK `submit_job`, polling logs every 5 ms"
RAY_CLI = "`ray job submit` (CLI, tails logs)"


@dataclass
class Series:
    label: str
    printed: list[float] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def add(self, key: str, value: float) -> None:
        self.extra.setdefault(key, []).append(value)


def first_stamp(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(MARK):
            with contextlib.suppress(ValueError, IndexError):
                return float(line[len(MARK) :].split()[0])
    return None


def host_python() -> Path:
    """The interpreter Shoal runs ``python:3.11`` jobs on (its venv's base interpreter)."""
    from shoal.envs.builder import default_host_python

    return default_host_python()


def job_path_env(python: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Process variables with ``python`` resolving to ``python`` (as a job's environment has it)."""
    env = dict(os.environ if base is None else base)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


# -- bare ------------------------------------------------------------------------------------------


def bare(argv: list[str], env: dict[str, str], result: Series) -> None:
    t0 = time.time()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    seen = time.time()
    proc.communicate()
    stamp = first_stamp(line)
    if proc.returncode != 0 or stamp is None:
        raise RuntimeError(f"{argv} -> {proc.returncode}: {line!r}")
    result.printed.append(stamp - t0)
    result.seen.append(seen - t0)


# -- Shoal -----------------------------------------------------------------------------------------


def iso_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


class ShoalJobs:
    def __init__(self, server: Server, tmp: Path) -> None:
        from shoal import MLClient

        self.server = server
        self.ml = MLClient(base_url=server.url, token=server.headers["Authorization"].split(" ", 1)[1])
        self.http = httpx.Client(base_url=server.url, headers=server.headers, timeout=60)
        self.cli = str(Path(sys.executable).parent / "shoal")
        self.cli_env = {**os.environ, "SHOAL_HOME": str(server.home)}
        for key in ("SHOAL_DATABASE_URL", "SHOAL_ARTIFACT_ROOT", "SHOAL_SERVER_URL", "SHOAL_TOKEN"):
            self.cli_env.pop(key, None)
        self.yml = tmp / "job.yml"
        self.yml.write_text(json.dumps({"command": COMMAND, "environment": ENV}) + "\n")  # JSON is YAML

    def close(self) -> None:
        self.http.close()

    def submit(self, cmd: str = COMMAND, **kw: Any) -> str:
        from shoal import command

        return str(self.ml.jobs.create_or_update(command(command=cmd, environment=ENV, **kw)).name)

    def body(self, name: str) -> dict[str, Any]:
        resp = self.http.get(f"/api/v1/workspaces/default/jobs/{name}")
        resp.raise_for_status()
        return resp.json()

    def wait(self, name: str, every: float = 0.1, limit: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            body = self.body(name)
            if body["status"] in TERMINAL:
                return body
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {name} still {body['status']} after {limit:.0f} s")
            time.sleep(every)

    def log(self, name: str) -> str:
        data, _ = self.ml.jobs.read_log(name, LOG, 0)
        return data.decode("utf-8", "replace")

    def finish(self, name: str, t0: float, result: Series, body: dict[str, Any] | None = None) -> dict[str, Any]:
        body = body or self.wait(name)
        if body["status"] != "Completed":
            raise RuntimeError(f"job {name} ended {body['status']}: {body.get('error')}")
        stamp = first_stamp(self.log(name))
        if stamp is None:
            raise RuntimeError(f"job {name}: no first line in its log")
        result.printed.append(stamp - t0)
        times = {k.rsplit(".", 1)[1]: iso_ts(v) for k, v in body["properties"].items() if "status_time" in k}
        return {"t0": t0, "first": stamp, **times}

    def quiet(self, result: Series) -> dict[str, Any]:
        t0 = time.time()
        name = self.submit()
        result.add("submit call", time.time() - t0)
        return self.finish(name, t0, result)

    def polled(self, result: Series) -> dict[str, Any]:
        t0 = time.time()
        name = self.submit()
        deadline = time.monotonic() + 120
        while first_stamp(self.log(name)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {name}: no first line within 120 s")
            time.sleep(0.005)
        result.seen.append(time.time() - t0)
        return self.finish(name, t0, result)

    def via_cli(self, result: Series) -> dict[str, Any]:
        t0 = time.time()
        out = subprocess.run(
            [self.cli, "job", "create", "--file", str(self.yml), "--query", "name", "-o", "tsv"],
            env=self.cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        result.add("CLI returned", time.time() - t0)
        if out.returncode != 0 or not out.stdout.strip():
            raise RuntimeError(f"shoal job create -> {out.returncode}: {out.stderr[-500:]}")
        return self.finish(out.stdout.strip().splitlines()[-1].strip(), t0, result)


SEGMENTS = {  # key: (label, from, to)
    "submit": ("submit → Queued (SDK request: validate, resolve, store)", "t0", "Queued"),
    "pickup": ("Queued → Preparing (dispatcher picks it up, claims it)", "Queued", "Preparing"),
    "runner": ("Preparing → Running (runner: forked warm, run spec, env, code, inputs)", "Preparing", "Running"),
    "user": ("Running → first line printed (bash, python, print)", "Running", "first"),
    "total": ("submit → first line printed (total)", "t0", "first"),
    "tail": ("first line → Completed (wind-down, not part of the start)", "first", "Completed"),
}
PARTS = ("submit", "pickup", "runner", "user")


def segments(timelines: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {key: [t[b] - t[a] for t in timelines if a in t and b in t] for key, (_, a, b) in SEGMENTS.items()}


RUNNER_PROBE = (
    "import time; t0 = time.perf_counter(); import shoal.runtime.client; t1 = time.perf_counter(); "
    "import shoal.runtime.__main__; t2 = time.perf_counter(); import shoal.envs; t3 = time.perf_counter(); "
    "import shoal.entities.expressions; t4 = time.perf_counter(); "
    "print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)"
)
# What a runner has imported before its first request, then the moment it got there.
RUNNER_READY = (
    "import time, shoal.runtime.__main__, shoal.envs, shoal.entities.expressions; "
    "print('READY', time.time(), flush=True)"
)


def runner_cold_start(n: int) -> dict[str, list[float]]:
    """What a cold runner pays before its first request: a fresh interpreter and its imports."""
    out: dict[str, list[float]] = {k: [] for k in ("start", "httpx", "runtime", "envs", "expressions", "wall")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        out["start"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", RUNNER_PROBE], env=env, check=True, capture_output=True, text=True)
        out["wall"].append(time.perf_counter() - t0)
        for key, value in zip(("httpx", "runtime", "envs", "expressions"), res.stdout.split(), strict=True):
            out[key].append(float(value))
    return out


def runner_start(tmp: Path, n: int) -> dict[str, list[float]]:
    """``LocalBackend.submit`` until the runner has what a runner imports, warm (forked by the warm
    process) and cold (``warm=False``: a new process), alternating; job code unconfined."""
    from shoal.compute import RunnerAttempt
    from shoal.compute.local import LocalBackend

    out: dict[str, list[float]] = {"warm": [], "cold": []}
    backends = {
        "warm": LocalBackend(home=tmp / "runner-start", isolation_mode="off", warm=True),
        "cold": LocalBackend(home=tmp / "runner-start", isolation_mode="off", warm=False),
    }
    if not backends["warm"].warm_up(timeout=60):
        raise RuntimeError("the warm runner did not get ready")
    try:
        for i in range(n):
            for kind, backend in backends.items():
                attempt = RunnerAttempt(
                    "ws",
                    f"{kind}{i}",
                    1,
                    server_url="http://127.0.0.1:9/",
                    token="-",
                    argv=(sys.executable, "-c", RUNNER_READY),
                )
                t0 = time.time()
                handle = backend.submit(attempt)
                log = backend.logs_location(attempt)
                deadline = time.monotonic() + 60
                while not re.search(r"^READY \S+\n", text := log.read_text() if log.exists() else "", re.M):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{kind} runner {handle}: not ready within 60 s")
                    time.sleep(0.002)
                out[kind].append(float(re.findall(r"^READY (\S+)\n", text, re.M)[0]) - t0)
                while backend.poll(handle):
                    time.sleep(0.005)
                backend.reap()
    finally:
        backends["warm"].close()
    return out


@dataclass
class Capacity:
    completed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    max_overlap: int = 0
    max_overlap_status: int = 0
    wall_s: float = math.nan
    claimed_in_order: bool = False
    started_in_order: bool = False
    out_of_order: int = 0
    displacement: int = 0
    handoffs: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    error: str = ""


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])  # ends sort first
    best = cur = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def capacity(jobs: ShoalJobs) -> Capacity:
    cap = Capacity()
    out = subprocess.run(
        [jobs.cli, "compute", "create", "--name", "pair", "--type", "amlcompute", "--max-instances", str(CAPACITY_MAX)]
        + ["-o", "none"],
        env=jobs.cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        cap.error = f"shoal compute create -> {out.returncode}: {out.stderr[-300:]}"
        return cap
    t_first = time.time()
    names = [
        jobs.submit(f'python -c "{CAPACITY_CODE}"', compute="azureml:pair", display_name=f"capacity-{i:02d}")
        for i in range(CAPACITY_JOBS)
    ]
    bodies = [jobs.wait(name, every=0.2, limit=300) for name in names]  # in submission order
    runs: list[tuple[float, float]] = []
    occupied: list[tuple[float, float]] = []
    starts: list[tuple[float, int]] = []
    claims: list[tuple[float, int]] = []
    ends: list[float] = []
    for index, (name, body) in enumerate(zip(names, bodies, strict=True)):
        cap.statuses[body["status"]] = cap.statuses.get(body["status"], 0) + 1
        times = {k.rsplit(".", 1)[1]: iso_ts(v) for k, v in body["properties"].items() if "status_time" in k}
        end_state = next((s for s in TERMINAL if s in times), None)
        if "Preparing" in times and end_state:
            occupied.append((times["Preparing"], times[end_state]))
            ends.append(times[end_state])
            cap.waits.append(times["Preparing"] - times["Queued"])
            claims.append((times["Preparing"], index))
        text = jobs.log(name)
        start = re.search(r"^start ([0-9.]+)", text, re.M)
        end = re.search(r"^end ([0-9.]+)", text, re.M)
        if start and end:
            runs.append((float(start.group(1)), float(end.group(1))))
            starts.append((float(start.group(1)), index))
    cap.completed = cap.statuses.get("Completed", 0)
    cap.max_overlap = max_overlap(runs)
    cap.max_overlap_status = max_overlap(occupied)
    cap.wall_s = (max(ends) - t_first) if ends else math.nan
    claimed = [index for _, index in sorted(claims)]
    cap.claimed_in_order = claimed == sorted(claimed)
    order = [index for _, index in sorted(starts)]
    cap.started_in_order = order == sorted(order)
    cap.out_of_order = sum(1 for i, index in enumerate(order) if index != i)
    cap.displacement = max((abs(i - index) for i, index in enumerate(order)), default=0)
    # A freed slot until a queued job takes it: the k-th claim after the first CAPACITY_MAX takes the
    # slot freed k-th (one node per job), so match sorted claims with sorted ends.
    later = sorted(begin for begin, _ in occupied)[CAPACITY_MAX:]
    cap.handoffs = [begin - end for begin, end in zip(later, sorted(ends), strict=False)]
    return cap


# -- peers -----------------------------------------------------------------------------------------


def streamed(argv: list[str], env: dict[str, str], cwd: Path, result: Series, *, stop_at_line: bool) -> str:
    """Start a CLI, note when the first line shows on its output; stop it there or let it finish."""
    t0 = time.time()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    captured: list[str] = []
    stamp = None
    try:
        for line in proc.stdout:
            captured.append(line)
            stamp = first_stamp(line)
            if stamp is not None:
                result.seen.append(time.time() - t0)
                result.printed.append(stamp - t0)
                break
        if stop_at_line and stamp is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        captured.append(proc.communicate(timeout=120)[0] or "")
        if not stop_at_line:
            result.add("CLI exited", time.time() - t0)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "".join(captured)
    if stamp is None:
        raise RuntimeError(f"{argv[0]} {argv[1]} -> {proc.returncode}, no first line:\n{text[-1500:]}")
    return text


def mlflow_run(exe: str, tmp: Path, python: Path, args: argparse.Namespace) -> Series:
    result = Series(MLFLOW)
    project = tmp / "mlproject"
    project.mkdir()
    project.joinpath("MLproject").write_text(
        "name: job-start\nentry_points:\n  main:\n    command: " + json.dumps(COMMAND) + "\n"
    )
    env = job_path_env(python)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    argv = [exe, "run", str(project), "--env-manager", "local", "--experiment-name", "job-start"]
    streamed(argv, env, tmp, Series("warm-up"), stop_at_line=False)  # creates the database
    for i in range(args.peer_samples):
        streamed(argv, env, tmp, result, stop_at_line=False)
        print(f"    mlflow run {i + 1}/{args.peer_samples}: {ms(result.printed[-1])} ms", flush=True)
    return result


RAY_DRIVER = r"""
import json, sys, time
from ray.job_submission import JobSubmissionClient
address, count, warm, entry = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mark = "FIRST LINE "
client = JobSubmissionClient(address)
def stamp(text):
    for line in text.splitlines():
        if line.startswith(mark):
            return float(line[len(mark):].split()[0])
for i in range(warm + count):
    t0 = time.time()
    job = client.submit_job(entrypoint=entry)
    submitted = time.time()
    deadline = time.monotonic() + 120
    while stamp(client.get_job_logs(job)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job}: no first line, status {client.get_job_status(job)}")
        time.sleep(0.005)
    seen = time.time()
    while str(client.get_job_status(job)).rsplit(".", 1)[-1] not in ("SUCCEEDED", "FAILED", "STOPPED"):
        time.sleep(0.02)
    if i >= warm:
        first = stamp(client.get_job_logs(job))
        print(json.dumps({"printed": first - t0, "seen": seen - t0, "submit": submitted - t0}), flush=True)
"""


@contextlib.contextmanager
def ray_head(exe: str, tmp: Path, python: Path) -> Iterator[tuple[str, float]]:
    """``ray start --head --block`` in its own session; its dashboard (Jobs API) URL and start time."""
    ports = {name: free_port() for name in ("port", "dash", "client", "agent")}
    env = job_path_env(python)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    log = (tmp / "ray-head.log").open("wb")
    argv = [exe, "start", "--head", "--block", "--num-cpus", "2", "--disable-usage-stats"]
    argv += ["--port", str(ports["port"]), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(ports["dash"])]
    argv += ["--ray-client-server-port", str(ports["client"]), "--dashboard-agent-listen-port", str(ports["agent"])]
    argv += ["--temp-dir", str(tmp / "ray")]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{ports['dash']}"
    try:
        wait_until_answers(proc, url + "/api/version", "ray start", tmp / "ray-head.log", limit=180, every=0.25)
        yield url, time.perf_counter() - started
    finally:
        stop_session(proc)
        log.close()


def stop_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the session leader we started (``ray start --block`` tears its node down), then
    SIGKILL whatever is left in that session, by pid."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 10
    while True:
        left = session_members(proc.pid)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def session_members(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def ray_jobs(exe: str, tmp: Path, python: Path, args: argparse.Namespace) -> tuple[Series, Series, float]:
    sdk, cli = Series(RAY_SDK), Series(RAY_CLI)
    ray_python = str(Path(exe).parent / "python")
    with ray_head(exe, tmp, python) as (url, start_s):
        print(f"  Ray head node up in {start_s:.1f} s ({url})", flush=True)
        out = subprocess.run(
            [ray_python, "-c", RAY_DRIVER, url, str(args.peer_samples), "2", COMMAND],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"Ray SDK driver -> {out.returncode}: {out.stderr[-1500:]}")
        for line in out.stdout.splitlines():
            row = json.loads(line)
            sdk.printed.append(row["printed"])
            sdk.seen.append(row["seen"])
            sdk.add("submit call", row["submit"])
        print(f"    Ray SDK: {ms(median(sdk.printed))} ms median", flush=True)
        env = job_path_env(python)
        env["RAY_ADDRESS"] = url
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(args.peer_samples):
                sid = f"bench-cli-{i}-{os.getpid()}"
                argv = [exe, "job", "submit", "--submission-id", sid, "--", *["python", "-c", CODE]]
                streamed(argv, env, tmp, cli, stop_at_line=True)  # the job goes on; wait for it below
                deadline = time.monotonic() + 120
                while http.get(f"/api/jobs/{sid}").json().get("status") not in ("SUCCEEDED", "FAILED", "STOPPED"):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"ray job {sid} did not finish")
                    time.sleep(0.05)
                print(f"    ray job submit {i + 1}/{args.peer_samples}: {ms(cli.printed[-1])} ms", flush=True)
    return sdk, cli, start_s


def ray_version(exe: str) -> str:
    try:
        out = subprocess.run(
            [str(Path(exe).parent / "python"), "-c", "import ray; print(ray.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# -- report ----------------------------------------------------------------------------------------


def mean(samples: list[float]) -> float:
    return sum(samples) / len(samples) if samples else math.nan


def cell(samples: list[float]) -> str:
    return f"{ms(median(samples))} ({ms(p95(samples))})" if samples else "—"


def results_table(paths: list[Series], floor: float) -> str:
    lines = [
        "| path | n | first line printed | first line seen by the submitter | printed − bare | printed / bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in paths:
        over = median(p.printed) - floor
        lines.append(
            f"| {p.label} | {len(p.printed)} | {cell(p.printed)} | {cell(p.seen)} | "
            f"{'—' if p.label == BARE else ('+' if over >= 0 else '−') + ms(abs(over))} | "
            f"{ratio(median(p.printed), floor)} |"
        )
    return "\n".join(lines)


def breakdown_table(timelines: list[dict[str, Any]]) -> str:
    lines = ["| segment | median | p95 |", "|---|---:|---:|"]
    for key, values in segments(timelines).items():
        label = SEGMENTS[key][0]
        lines.append(f"| {label} | {ms(median(values))} | {ms(p95(values))} |")
    return "\n".join(lines)


def start_table(start: dict[str, list[float]]) -> str:
    rows = [
        ("warm: forked by `python -m shoal.runtime.warm` (the local backend's default)", "warm"),
        ("cold: a new `python` process that imports the runner (`SHOAL_WARM_RUNNER=0`, and the fallback)", "cold"),
    ]
    lines = ["| runner start, `LocalBackend.submit` → runner ready (imports done) | median | p95 |", "|---|---:|---:|"]
    lines += [f"| {label} | {ms(median(start[key]))} | {ms(p95(start[key]))} |" for label, key in rows]
    return "\n".join(lines)


def cold_table(cold: dict[str, list[float]]) -> str:
    rows = [
        ("`python -c pass` (the runner's interpreter, whole process)", "start"),
        ("`import shoal.runtime.client` (its HTTP client, on `http.client`)", "httpx"),
        ("`import shoal.runtime.__main__` (the rest of the runner)", "runtime"),
        ("`import shoal.envs` (lazy, in prepare_environment)", "envs"),
        ("`import shoal.entities.expressions` (lazy; loads the `shoal.entities` package)", "expressions"),
        ("all of it: whole process", "wall"),
    ]
    lines = ["| step | median | p95 |", "|---|---:|---:|"]
    lines += [f"| {label} | {ms(median(cold[key]))} | {ms(p95(cold[key]))} |" for label, key in rows]
    return "\n".join(lines)


def capacity_text(cap: Capacity) -> str:
    if cap.error:
        return f"Not measured: {cap.error}."
    ok = cap.max_overlap <= CAPACITY_MAX and cap.max_overlap_status <= CAPACITY_MAX and cap.completed == CAPACITY_JOBS
    statuses = ", ".join(f"{v} {k}" for k, v in sorted(cap.statuses.items()))
    return "\n".join(
        [
            f"{CAPACITY_JOBS} jobs submitted back to back to `azureml:pair` (`amlcompute`, `max_instances: "
            f"{CAPACITY_MAX}`), each `python -c \"...print('start', time.time()); time.sleep(0.5); "
            "print('end', time.time())\"`.",
            "",
            "| check | result |",
            "|---|---|",
            f"| outcome | {statuses} |",
            f"| most commands running at once ([start, end] printed by the commands) | {cap.max_overlap} |",
            f"| most jobs holding a slot at once ([Preparing, Completed] status times) | {cap.max_overlap_status} |",
            f"| claimed (Preparing) in submission order | {'yes' if cap.claimed_in_order else 'no'} |",
            "| commands started in submission order | "
            + (
                "yes"
                if cap.started_in_order
                else f"no: {cap.out_of_order} out of place, at most {cap.displacement} position(s) "
                "(two runners claimed together race to their first line)"
            )
            + " |",
            f"| wall time, first submit → last Completed | {cap.wall_s:.1f} s "
            f"(floor for 10 pairs of 0.5 s sleeps: 5.0 s) |",
            f"| slot freed (Completed) → next queued job claimed (Preparing), {len(cap.handoffs)} hand-offs | "
            f"median {ms(median(cap.handoffs))} ms, mean {ms(mean(cap.handoffs))} ms, max "
            f"{ms(max(cap.handoffs, default=math.nan))} ms; {sum(cap.handoffs):.1f} slot-seconds idle in all |",
            f"| queued → claimed, per job | median {ms(median(cap.waits))} ms, max "
            f"{ms(max(cap.waits, default=math.nan))} ms |",
            f"| capacity respected and all {CAPACITY_JOBS} Completed | **{'yes' if ok else 'NO'}** |",
        ]
    )


def reading(
    paths: dict[str, Series],
    timelines: list[dict[str, Any]],
    cold: dict[str, list[float]],
    start: dict[str, list[float]],
    cap: Capacity,
) -> str:
    floor = median(paths[BARE].printed)
    sdk = median(paths[SDK].printed)
    over = sdk - floor
    segs = {key: median(v) for key, v in segments(timelines).items()}
    parts = [
        f"With the server warm and the environment cached, a trivial job prints its first line "
        f"{ms(sdk)} ms after `create_or_update` is called, against {ms(floor)} ms for the same command "
        f"started bare: Shoal adds {ms(over)} ms at the median, "
        + (
            f"within the {ms(TARGET_S)} ms target."
            if over < TARGET_S
            else f"**over the {ms(TARGET_S)} ms target** by {ms(over - TARGET_S)} ms."
        )
    ]
    biggest = max(PARTS, key=lambda k: segs[k])
    parts.append(
        f"The largest part is {SEGMENTS[biggest][0].split(' (')[0]}: {ms(segs[biggest])} ms of "
        f"{ms(segs['total'])} ms ({segs[biggest] / segs['total']:.0%})."
    )
    imports = median(cold["httpx"]) + median(cold["runtime"]) + median(cold["envs"]) + median(cold["expressions"])
    warm, cold_start = median(start["warm"]), median(start["cold"])
    parts.append(
        f"The runner, `python -m shoal.runtime`, is no new process: the local backend keeps a warm one "
        f"(`python -m shoal.runtime.warm`) that imported it once and forks it per job. Measured apart "
        f"({len(start['warm'])} starts each, alternating), a forked runner has its imports {ms(warm)} ms after "
        f"`submit`, a new process {ms(cold_start)} ms: a fresh interpreter ({ms(median(cold['start']))} ms) plus "
        f"{ms(imports)} ms of imports — its HTTP client {ms(median(cold['httpx']))} ms, the rest of "
        f"`shoal.runtime` {ms(median(cold['runtime']))} ms, `shoal.envs` {ms(median(cold['envs']))} ms, "
        f"`shoal.entities.expressions` {ms(median(cold['expressions']))} ms. The rest of Preparing → Running "
        f"(~{ms(max(segs['runner'] - warm, 0.0))} ms) is the runner's own work: its requests (run spec, then "
        "Running), the job's environment layer and working folder, the sandbox's set-up. Started cold, each "
        f"job would pay ~{ms(cold_start - warm)} ms more at this run's load (runner start, cold − warm), an "
        f"overhead of ~{ms(over + cold_start - warm)} ms."
    )
    pickup = segs["pickup"]
    if pickup < 0.05:
        parts.append(
            f"The dispatcher is not the bottleneck: it picks a submitted job up in {ms(pickup)} ms (woken by "
            "the submit, not by its 0.5 s poll)."
        )
    running = segs["user"]
    if running < floor + 0.03:
        parts.append(
            f"From Running to the first line takes {ms(running)} ms, about what the command costs bare "
            f"({ms(floor)} ms): starting the user process (`bash -c`, one process group) adds little."
        )
    else:
        parts.append(
            f"From Running to the first line takes {ms(running)} ms against a bare floor of {ms(floor)} ms: the "
            "runner reports Running over HTTP before it starts `bash -c`, and the server, the runner's heartbeat "
            "and log-shipper threads share the two cores with it."
        )
    poll = paths[SDK_POLL]
    if poll.seen and poll.printed:
        lag = median(poll.seen) - median(poll.printed)
        parts.append(
            f"A client sees the line through `read_log` {ms(lag)} ms after it is printed (median): the runner "
            "ships log files every 0.1 s (`LogShipper(interval=0.1)` in `src/shoal/runtime/logs.py`)."
        )
        perturb = median(poll.printed) - sdk
        if abs(perturb) > 0.03:
            parts.append(
                f"Polling every 5 ms itself moves the printed time by {'+' if perturb > 0 else '−'}"
                f"{ms(abs(perturb))} ms on two cores."
            )
    cli = paths[CLI]
    if cli.printed:
        parts.append(
            f"The CLI path costs {ms(median(cli.printed) - sdk)} ms more than the SDK: `shoal job create` "
            f"returns after {ms(median(cli.extra.get('CLI returned', [])))} ms, nearly all of it its own start-up."
        )
    if not cap.error and cap.handoffs and max(cap.handoffs) > 0.2:
        parts.append(
            f"On the capped cluster, a freed slot stays empty {ms(mean(cap.handoffs))} ms on average (median "
            f"{ms(median(cap.handoffs))}, up to {ms(max(cap.handoffs))} ms; {sum(cap.handoffs):.1f} slot-seconds "
            f"of the run's {CAPACITY_MAX * cap.wall_s:.0f}) before the next queued job is claimed: a runner's "
            "final status "
            "report does not wake the dispatcher "
            "(`runner_api.report` in `src/shoal/services/jobs/runner_api.py` never calls "
            "`ctx.notify_jobs()`), so the queue "
            "moves on the 0.5 s poll (`Dispatcher.poll_seconds`)."
        )
    peers = [p for k, p in paths.items() if k in (MLFLOW, RAY_SDK, RAY_CLI) and p.printed]
    if peers:
        parts.append(
            "Against the peers, medians to the first line printed: "
            + ", ".join(
                f"{p.label} {ms(median(p.printed))} ms ({ratio(median(p.printed), sdk)} Shoal SDK's)" for p in peers
            )
            + "."
        )
    return " ".join(parts)


def report(
    paths: dict[str, Series],
    timelines: list[dict[str, Any]],
    cold: dict[str, list[float]],
    start: dict[str, list[float]],
    cap: Capacity,
    info: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    floor = median(paths[BARE].printed)
    over = median(paths[SDK].printed) - floor
    met = over < TARGET_S
    cmd = "`.venv/bin/python benchmarks/job_start.py"
    cmd += f" --samples {args.samples}" if args.samples != 30 else ""
    cmd += f" --peer-samples {args.peer_samples}" if args.peer_samples != 10 else ""
    cmd += " --no-peers" if not args.peers else ""
    cmd += "`"
    out = [
        "## Starting a trivial job (`benchmarks/job_start.py`)",
        "",
        f"Run {today()} on {machine()} (load average at the end: {load_average()}); {cmd}, total "
        f"{info['total_s'] / 60:.1f} min. Shoal: `python -m shoal.server.main` (SQLite, ready in "
        f"{info['shoal_start_s']:.1f} s), warmed with 2 jobs; the job runs `{COMMAND}` on `environment: "
        f"{{image: python:3.11}}`, i.e. on the host interpreter (`{info['python']}`), nothing to build. Every "
        "other path runs the same command on the same interpreter, so the bare floor is that interpreter's own "
        "start-up (its site-packages `.pth` hooks included).",
        "",
        "Milliseconds, median (p95). *Printed*: the time the command wrote into its first line minus the "
        "time the submit started (one clock, no polling error). *Seen*: when the submitter had the line. "
        f"Bare and Shoal paths: {args.samples} interleaved rounds; peers: {args.peer_samples} samples each "
        "(seconds per sample), after their own warm-up.",
        "",
        results_table(list(paths.values()), floor),
        "",
        f"**Target: Shoal's overhead over bare `python` below {ms(TARGET_S)} ms at the median — "
        f"{'met' if met else 'NOT met'}: {ms(over)} ms** (Shoal SDK printed − bare exec printed). "
        f"**Target of issue #11, below {ms(TARGET_LOCAL_S)} ms — {'met' if over < TARGET_LOCAL_S else 'NOT met'}.**",
    ]
    notes = [p.note for p in paths.values() if p.note]
    notes += info.get("peer_notes", [])
    if notes:
        out += ["", *[f"- {n}" for n in notes]]
    out += [
        "",
        f"### Where the time goes (Shoal SDK, quiet; {len(timelines)} jobs), milliseconds",
        "",
        'From the job\'s recorded status times (`properties["shoal.status_time.<State>"]`, server clock = '
        "client clock) and the printed first line.",
        "",
        breakdown_table(timelines),
        "",
        f"The runner's start, measured apart: `LocalBackend.submit` of a script that imports what a runner "
        f"imports and prints the time ({len(start['warm'])} of each, alternating, job code unconfined):",
        "",
        start_table(start),
        "",
        f"What a cold start imports ({len(cold['wall'])} fresh interpreters, the server's `sys.executable`):",
        "",
        cold_table(cold),
        "",
        "### Capacity: 20 jobs on a cluster with `max_instances: 2`",
        "",
        capacity_text(cap),
        "",
        "### Reading",
        "",
        reading(paths, timelines, cold, start, cap),
    ]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30, help="rounds of bare + Shoal paths (at least 20 advised)")
    parser.add_argument("--peer-samples", type=int, default=10, help="samples per peer path (seconds each)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True, help="measure MLflow and Ray")
    parser.add_argument("--mlflow", help="the mlflow executable (default: $SHOAL_BENCH_MLFLOW, venv, PATH)")
    parser.add_argument("--ray", help="the ray executable (default: $SHOAL_BENCH_RAY, venv, PATH)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the order of paths within a round")
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    python = host_python()
    bare_env = job_path_env(python)
    paths = {label: Series(label) for label in (BARE, BARE_SH, SDK, SDK_POLL, CLI)}
    timelines: list[dict[str, Any]] = []
    info: dict[str, Any] = {"python": python, "peer_notes": []}
    with scratch("shoal-bench-job-start-") as tmp:
        with shoal_server(tmp) as server:
            info["shoal_start_s"] = server.start_s
            jobs = ShoalJobs(server, tmp)
            try:
                print(f"Shoal server up in {server.start_s:.1f} s; warming up", flush=True)
                for _ in range(2):
                    jobs.quiet(Series("warm-up"))
                jobs.via_cli(Series("warm-up"))
                print(f"{args.samples} rounds: bare, bare via bash, Shoal SDK quiet, SDK polled, CLI", flush=True)
                rng = random.Random(args.seed)
                steps = {
                    BARE: lambda: bare([str(python), "-c", CODE], bare_env, paths[BARE]),
                    BARE_SH: lambda: bare(["bash", "-c", COMMAND], bare_env, paths[BARE_SH]),
                    SDK: lambda: timelines.append(jobs.quiet(paths[SDK])),
                    SDK_POLL: lambda: jobs.polled(paths[SDK_POLL]),
                    CLI: lambda: jobs.via_cli(paths[CLI]),
                }
                order = list(steps)
                for i in range(args.samples):
                    rng.shuffle(order)  # no path always runs right after another's wind-down
                    for label in order:
                        steps[label]()
                    if (i + 1) % 5 == 0:
                        print(
                            f"  {i + 1}/{args.samples}: bare {ms(median(paths[BARE].printed))}, "
                            f"SDK {ms(median(paths[SDK].printed))}, CLI {ms(median(paths[CLI].printed))} ms",
                            flush=True,
                        )
                print("runner cold start (fresh interpreters)", flush=True)
                cold = runner_cold_start(max(8, args.samples // 3))
                print("runner start, warm and cold", flush=True)
                start = runner_start(tmp, max(10, args.samples))
                print(f"capacity: {CAPACITY_JOBS} jobs, max_instances {CAPACITY_MAX}", flush=True)
                cap = capacity(jobs)
                print(f"  max overlap {cap.max_overlap}, {cap.statuses}, {cap.wall_s:.1f} s", flush=True)
            finally:
                jobs.close()

        if args.peers:
            exe = find_mlflow(args.mlflow)
            if exe is None:
                info["peer_notes"].append(
                    "`mlflow run`: not measured (no mlflow executable; see benchmarks/README.md)."
                )
            else:
                version = mlflow_version(exe)
                print(f"MLflow {version}: mlflow run", flush=True)
                try:
                    paths[MLFLOW] = mlflow_run(exe, tmp, python, args)
                    paths[MLFLOW].label = f"`mlflow run --env-manager local` (MLflow {version}, SQLite)"
                    paths[MLFLOW].note = (
                        f"mlflow run: the CLI exits {ms(median(paths[MLFLOW].extra.get('CLI exited', [])))} ms "
                        "after it starts (median), the run's bookkeeping in SQLite included."
                    )
                except Exception as exc:  # keep Shoal's figures; say why the peer is missing
                    print(f"mlflow failed: {exc!r}", file=sys.stderr, flush=True)
                    info["peer_notes"].append(f"`mlflow run`: failed ({type(exc).__name__}: {str(exc)[:200]}).")
            ray = find_ray(args.ray)
            if ray is None:
                info["peer_notes"].append("Ray: not measured (no ray executable; see benchmarks/README.md).")
            else:
                version = ray_version(ray)
                print(f"Ray {version}", flush=True)
                try:
                    sdk, cli, start_s = ray_jobs(ray, tmp, python, args)
                    sdk.label = f"Ray {version} Jobs SDK `submit_job`, polling logs every 5 ms"
                    cli.label = f"`ray job submit` (Ray {version} CLI; stopped once the line shows)"
                    paths[RAY_SDK], paths[RAY_CLI] = sdk, cli
                    info["peer_notes"].append(
                        f"Ray: a local head node (`ray start --head --num-cpus 2`, up in {start_s:.1f} s), "
                        "warmed with 2 jobs; jobs run as entrypoints (`python -c ...`) under a JobSupervisor actor."
                    )
                except Exception as exc:
                    print(f"ray failed: {exc!r}", file=sys.stderr, flush=True)
                    info["peer_notes"].append(f"Ray: failed ({type(exc).__name__}: {str(exc)[:200]}).")
        else:
            info["peer_notes"].append("Peers: not measured (`--no-peers`).")
    info["total_s"] = time.perf_counter() - started

    text = report(paths, timelines, cold, start, cap, info, args)
    print()
    print(text)
    write_section("job_start", text, args.out)
    print(f"\nwrote the job_start section of {args.out} ({info['total_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
