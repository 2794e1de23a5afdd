"""Shoal on a Ray cluster against Ray's own Jobs SDK, on the same cluster in the same run.

    .venv/bin/python benchmarks/ray_compute.py [--samples 10] [--jobs 100]

The cluster is a real one, started here as the tests start theirs (``tests/raycluster.py``): a
head (no CPUs, with its dashboard: the Jobs API) and two worker nodes of 1 CPU and 4 GiB, each its
own ``ray start``, inside a network namespace this process makes (loopback only, so Ray talks over
127.0.0.1). A Shoal server runs in the same namespace with ``--ray-address``; its ``cpu-cluster``
is ``Standard_DS1_v2`` with ``max_instances: 2`` (one job per node).

(a) A trivial job's first printed line after submit (the line carries the time it was printed, so
    no polling error): Shoal's SDK (``create_or_update`` on ``azureml:cpu-cluster``), Ray's
    ``JobSubmissionClient.submit_job`` with ``entrypoint_num_cpus=1`` (so it, too, runs on a worker
    node), and bare ``python`` on this machine; interleaved rounds, after warming each path up.
(b) ``--jobs`` one-second jobs submitted back to back, through Shoal (``max_instances: 2``) and
    through the Jobs SDK (``entrypoint_num_cpus=1``: two at once): wall time from the first submit
    to the last command's end against the ideal (``jobs / 2`` seconds), and the slots' idle time
    (each command prints its start and end: the time a node held no running command).
(c) A ``--chain-steps`` chain pipeline (``benchmarks/pipelines.py``'s) on ``cpu-cluster``: the
    overhead per step (Shoal − the same commands bare, over the steps) against (a)'s job start
    overhead; issue #11 asks for a step within 20 ms of it on every backend.

Rewrites only its section of ``docs/benchmarks.md`` (``<!-- ray_compute:begin -->`` … ``end``).
Needs Ray (``shoal[ray]``, with its dashboard: ``ray[default]``) and CAP_SYS_ADMIN (the namespace).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    DOCS,
    REPO,
    free_port,
    load_average,
    machine,
    median,
    ms,
    p95,
    ratio,
    scratch,
    shoal_server,
    today,
    write_section,
)
from job_start import CODE, COMMAND, Series, ShoalJobs, bare, first_stamp, host_python, job_path_env

sys.path.insert(0, str(REPO))
from tests.raycluster import GIB, RayCluster, enter_network_namespace  # noqa: E402 - the tests' own cluster

ONE_SECOND = (
    "import time; print('start', time.time(), flush=True); time.sleep(1); print('end', time.time(), flush=True)"
)
CLUSTER_YAML = {
    "name": "cpu-cluster",
    "type": "amlcompute",
    "size": "Standard_DS1_v2",
    "min_instances": 0,
    "max_instances": 2,
}
SLOTS = 2
_RAYLET_STARTED = re.compile(
    r"\[(\S+ \S+) I \d+ \d+\] \(raylet\) worker_pool\.cc:\d+: Started worker process with pid (\d+)"
)
TERMINAL_RAY = ("SUCCEEDED", "FAILED", "STOPPED")
SHOAL = "Shoal SDK on Ray (`create_or_update`, `azureml:cpu-cluster`)"
RAY_SDK = "Ray Jobs SDK `submit_job` (`entrypoint_num_cpus=1`)"
BARE = "bare `python` (exec, on this machine)"


class DashboardCluster(RayCluster):
    """The tests' cluster with the head's dashboard on (Ray's Jobs API lives there)."""

    def start(self) -> DashboardCluster:
        self.dashboard_port = free_port()
        head = ["--head", "--port", str(self.port), "--num-cpus", "0", "--temp-dir", str(self.root / "t")]
        head += ["--include-dashboard=true", "--dashboard-host", "127.0.0.1"]
        head += ["--dashboard-port", str(self.dashboard_port), "--disable-usage-stats"]
        head += ["--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())]
        self._start_node("head", head)
        for i in range(self.workers):
            self.add_worker(f"worker{i}")
        self.wait_for_nodes(self.workers + 1)
        return self

    def add_worker(self, label: str) -> int:
        # Each node's agent on a port of its own: the Jobs API reads an entrypoint's logs there
        # (two nodes on one machine would both take the default port, and one would have none).
        args = ["--address", self.address, "--num-cpus", str(self.cpus), "--memory", str(int(self.memory_gib * GIB))]
        args += ["--dashboard-agent-listen-port", str(free_port())]
        return self._start_node(label, args)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"


@dataclass
class Batch:
    label: str
    wall_s: float = math.nan
    runs: list[tuple[float, float]] = field(default_factory=list)
    handoffs: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def idle_s(self) -> float:
        """Slot-seconds with no command running, from the first submit to the last end."""
        return SLOTS * self.wall_s - sum(end - start for start, end in self.runs)


def stamps(text: str) -> tuple[float, float] | None:
    start = re.search(r"^start ([0-9.]+)", text, re.M)
    end = re.search(r"^end ([0-9.]+)", text, re.M)
    return (float(start.group(1)), float(end.group(1))) if start and end else None


def _log_time(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def worker_starts(root: Path) -> list[float]:
    """Seconds each Ray worker process of the run took to start, from the cluster's own logs: the
    raylet's ``Started worker process with pid N`` to that worker's first log line (its core
    worker constructed). Every Shoal job and every Jobs SDK job waits for one (the job's actor)."""
    started: dict[str, float] = {}
    for path in root.glob("t/session_*/logs/raylet*.out"):
        for found in _RAYLET_STARTED.finditer(path.read_text(errors="replace")):
            started[found.group(2)] = _log_time(found.group(1))
    out = []
    for path in root.glob("t/session_*/logs/python-core-worker-*_*.log"):
        pid = path.stem.rsplit("_", 1)[1]
        with path.open(errors="replace") as log:
            first = re.match(r"\[(\S+ \S+) I", log.readline())
        if first and pid in started:
            out.append(_log_time(first.group(1)) - started[pid])
    return out


def finish_batch(batch: Batch, t_first: float, runs: list[tuple[float, float]]) -> Batch:
    batch.runs = runs
    batch.wall_s = max(end for _, end in runs) - t_first if runs else math.nan
    # The k-th start after the first SLOTS takes the slot freed by the k-th end.
    starts = sorted(start for start, _ in runs)[SLOTS:]
    batch.handoffs = [s - e for s, e in zip(starts, sorted(end for _, end in runs), strict=False)]
    return batch


# -- Ray's Jobs SDK --------------------------------------------------------------------------------


class RayJobs:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        from ray.job_submission import JobSubmissionClient

        self.client = JobSubmissionClient(url)
        self.runtime_env = {"env_vars": {"PATH": env["PATH"]}}

    def submit(self, code: str) -> str:
        return str(
            self.client.submit_job(
                entrypoint=f'python -c "{code}"', entrypoint_num_cpus=1, runtime_env=self.runtime_env
            )
        )

    def done(self, job: str) -> str:
        return str(self.client.get_job_status(job)).rsplit(".", 1)[-1]

    def wait(self, job: str, limit: float = 300) -> str:
        deadline = time.monotonic() + limit
        while (status := self.done(job)) not in TERMINAL_RAY:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray job {job} still {status} after {limit:.0f} s")
            time.sleep(0.05)
        return status

    def first_line(self, result: Series) -> None:
        t0 = time.time()
        job = self.submit(CODE)
        if self.wait(job) != "SUCCEEDED":
            raise RuntimeError(f"ray job {job}: {self.client.get_job_logs(job)[-500:]}")
        stamp = first_stamp(self.client.get_job_logs(job))
        if stamp is None:
            raise RuntimeError(f"ray job {job}: no first line")
        result.printed.append(stamp - t0)

    def batch(self, count: int) -> Batch:
        batch = Batch(RAY_SDK)
        t_first = time.time()
        jobs = [self.submit(ONE_SECOND) for _ in range(count)]
        runs = []
        for job in jobs:
            # Submitted all at once, two at a time: the last waits for all the others.
            if self.wait(job, limit=max(600.0, 20.0 * count)) != "SUCCEEDED":
                batch.failed += 1
                continue
            found = stamps(self.client.get_job_logs(job))
            if found:
                runs.append(found)
        return finish_batch(batch, t_first, runs)


# -- Shoal -----------------------------------------------------------------------------------------


def shoal_first_line(jobs: ShoalJobs, result: Series, timelines: list[dict[str, Any]]) -> None:
    t0 = time.time()
    name = jobs.submit(COMMAND, compute="azureml:cpu-cluster")
    timelines.append(jobs.finish(name, t0, result))


def shoal_batch(jobs: ShoalJobs, count: int) -> Batch:
    batch = Batch(SHOAL)
    t_first = time.time()
    names = [
        jobs.submit(f'python -c "{ONE_SECOND}"', compute="azureml:cpu-cluster", display_name=f"one-second-{i:03d}")
        for i in range(count)
    ]
    runs = []
    for name in names:
        body = jobs.wait(name, every=0.2, limit=600)
        if body["status"] != "Completed":
            batch.failed += 1
            continue
        found = stamps(jobs.log(name))
        if found:
            runs.append(found)
    return finish_batch(batch, t_first, runs)


def shoal_chain(jobs: ShoalJobs, steps: int) -> dict[str, float]:
    """(c) A ``steps``-step chain pipeline (each step reads the previous one's output, as in
    ``benchmarks/pipelines.py``) on ``cpu-cluster``, against the same commands run bare in turn."""
    from pipelines import bare as bare_pipeline
    from pipelines import chain_segments, run_pipeline, spec, steps_of

    body = spec("chain", steps, f"ray-chain-{time.time_ns()}")
    for step in body["jobs"].values():
        step["compute"] = "azureml:cpu-cluster"
    bare_s = bare_pipeline("chain", steps)
    base = "/api/v1/workspaces/default"
    shoal_s, ran = run_pipeline(jobs.http, base, body)
    segments = chain_segments(steps_of(jobs.http, base, ran["name"]))
    return {"steps": steps, "bare_s": bare_s, "shoal_s": shoal_s, "segments": segments}


SEGMENTS = (
    ("submit → Queued", "t0", "Queued"),
    ("Queued → Preparing (dispatcher claims it, reserves the node's share)", "Queued", "Preparing"),
    ("Preparing → Running (share placed, the node's agent starts the runner, env, code)", "Preparing", "Running"),
    ("Running → first line printed", "Running", "first"),
)


# -- the report ------------------------------------------------------------------------------------


def cell(samples: list[float]) -> str:
    return f"{ms(median(samples))} ({ms(p95(samples))})" if samples else "—"


def report(
    paths: dict[str, Series], timelines: list[dict[str, Any]], batches: list[Batch], info: dict[str, Any]
) -> str:
    floor = median(paths[BARE].printed)
    shoal, peer = median(paths[SHOAL].printed), median(paths[RAY_SDK].printed)
    ideal = info["jobs"] / SLOTS
    out = [
        "## Shoal on a Ray cluster (`benchmarks/ray_compute.py`)",
        "",
        f"Run {today()} on {machine()} (load average at the start: {info['load_start']}, at the end: "
        f"{load_average()}); `.venv/bin/python benchmarks/ray_compute.py --samples {info['samples']} --jobs "
        f"{info['jobs']}`, total {info['total_s'] / 60:.1f} min. Ray {info['ray']}: a head (no CPUs, dashboard "
        "on) and 2 worker nodes of 1 CPU and 4 GiB, each its own `ray start`, in a network namespace with the "
        "Shoal server (`--ray-address`); `cpu-cluster` is `Standard_DS1_v2`, `max_instances: 2`. Both systems "
        "run the same commands on the same nodes and interpreter; the Jobs SDK with `entrypoint_num_cpus=1`, so "
        "its entrypoints take a worker's CPU as Shoal's runners do.",
        "",
        f"### (a) A trivial job's first line ({info['samples']} interleaved rounds, warm cluster), milliseconds",
        "",
        "*Printed*: the time the command wrote into its first line minus the time the submit started.",
        "",
        "| path | n | first line printed, median (p95) | − bare | / Ray Jobs SDK |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, series in paths.items():
        over = "—" if label == BARE else "+" + ms(median(series.printed) - floor)
        versus = ratio(median(series.printed), peer)
        out.append(f"| {label} | {len(series.printed)} | {cell(series.printed)} | {over} | {versus} |")
    out += [
        "",
        f"Targets: Shoal at most a third of the Jobs SDK's start — **{'met' if shoal <= peer / 3 else 'NOT met'}** "
        f"({ratio(shoal, peer)}); within 300 ms of bare `python` — **{'met' if shoal - floor <= 0.3 else 'NOT met'}** "
        f"(+{ms(shoal - floor)} ms).",
        "",
        "Where Shoal's time goes (medians of the same jobs' recorded status times, milliseconds):",
        "",
        "| segment | median | p95 |",
        "|---|---:|---:|",
    ]
    for label, a, b in SEGMENTS:
        values = [t[b] - t[a] for t in timelines if a in t and b in t]
        out.append(f"| {label} | {ms(median(values))} | {ms(p95(values))} |")
    starts = info.get("worker_starts") or []
    out += [
        f"| Ray starting the worker process of an actor (raylet: process started → its core worker up; every "
        f"worker of the run, {len(starts)}: nearly all the Jobs SDK's; Shoal's are its node agents, started once) | "
        f"{ms(median(starts))} | {ms(p95(starts))} |",
        "",
    ]
    if not batches:
        return "\n".join(out + chain_section(info, shoal - floor))
    out += [
        f"### (b) {info['jobs']} one-second jobs, two at a time",
        "",
        f"| system | wall time (first submit → last end) | / ideal ({ideal:.0f} s) | slot-seconds idle | "
        "hand-off (a slot's end → its next start), median (p95) | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for b in batches:
        out.append(
            f"| {b.label} | {b.wall_s:.1f} s | {ratio(b.wall_s, ideal)} | {b.idle_s:.1f} | "
            f"{cell(b.handoffs)} ms | {b.failed} |"
        )
    shoal_b = next(b for b in batches if b.label == SHOAL)
    prep = median([t["Running"] - t["Preparing"] for t in timelines if "Running" in t and "Preparing" in t])
    out += [
        "",
        f"Target: within 10 % of the ideal — **{'met' if shoal_b.wall_s <= ideal * 1.1 else 'NOT met'}** "
        f"({ratio(shoal_b.wall_s, ideal)}).",
        "",
        f"Reading: a Shoal job starts no Ray worker process: its share of a node is a one-bundle placement "
        f"group and its runner is started by the node's agent, an actor whose worker was started once, before "
        f"the jobs (docs/compute-ray.md, *How a job runs*). Preparing → Running ({ms(prep)} of {ms(shoal)} ms) "
        f"is the placement, the runner's start and its preparation; the Jobs SDK waits for a new worker "
        f"process for every job's supervisor actor ({ms(median(starts))} ms at the median). In (b) a hand-off "
        "is one command's end to the next command's start on that node: the next job was prepared ahead on "
        "the node while the compute was full (a *follower*, docs/compute-ray.md), so it is the runner noticing "
        "its command ended, the lock it held released, the follower's `Running` report and the command's own "
        "start.",
        "",
    ]
    return "\n".join(out + chain_section(info, shoal - floor)).rstrip()


def chain_section(info: dict[str, Any], job_start_s: float) -> list[str]:
    """(c)'s table: a chain step's overhead on the cluster against (a)'s job start overhead."""
    runs = info.get("chain") or []
    if not runs:
        return []
    steps = runs[0]["steps"]
    per_step = [(r["shoal_s"] - r["bare_s"]) / r["steps"] for r in runs]
    over = median(per_step) - job_start_s
    return [
        f"### (c) A {steps}-step chain pipeline on the cluster ({len(runs)} run(s)), per step",
        "",
        "Each step runs `python -c pass`, writes its output and reads the previous step's (as in "
        "`benchmarks/pipelines.py`), with `compute: azureml:cpu-cluster`. Overhead per step = (Shoal − the "
        "same command lines run bare by `bash -c` in turn) / steps, from submit to the pipeline's "
        "`Completed`; held against (a)'s job start overhead (Shoal − bare).",
        "",
        "| bare, per step | Shoal, per step | overhead per step | job start overhead (a) | per step − job start |",
        "|---:|---:|---:|---:|---:|",
        f"| {ms(median([r['bare_s'] / r['steps'] for r in runs]))} ms | "
        f"{ms(median([r['shoal_s'] / r['steps'] for r in runs]))} ms | {ms(median(per_step))} ms | "
        f"{ms(job_start_s)} ms | {'+' if over >= 0 else '−'}{ms(abs(over))} ms |",
        "",
        f"Target (issue #11): a chain step within 20 ms of a job's start overhead — "
        f"**{'met' if over <= 0.020 else 'NOT met'}**.",
        "",
        *chain_segments_table(runs),
    ]


def chain_segments_table(runs: list[dict[str, Any]]) -> list[str]:
    """Where (c)'s steps spent their time, from their recorded status times (as in pipelines.py)."""
    pooled: dict[str, list[float]] = {}
    for run in runs:
        for label, values in (run.get("segments") or {}).items():
            pooled.setdefault(label, []).extend(values)
    if not any(pooled.values()):
        return []
    count = max(len(v) for v in pooled.values())
    out = [
        f"Where a step's time goes on the cluster ({count} steps, from their recorded status times), milliseconds:",
        "",
        "| segment | median | p95 |",
        "|---|---:|---:|",
    ]
    out += [f"| {label} | {ms(median(v))} | {ms(p95(v))} |" for label, v in pooled.items() if v]
    return [*out, "", CHAIN_ON_RAY, ""]


CHAIN_ON_RAY = (
    "The segments are named as in `benchmarks/pipelines.py`; on the cluster, Queued → Preparing is the claim "
    "and the share's reservation, and Preparing → Running holds the share's placement, the node agent's start "
    "of the runner and the runner's preparation."
)


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="rounds of (a): bare, Shoal, Ray Jobs SDK")
    parser.add_argument("--jobs", type=int, default=100, help="one-second jobs in (b)")
    parser.add_argument("--chain-steps", type=int, default=30, help="steps of (c)'s chain pipeline (0: skip (c))")
    parser.add_argument("--chain-samples", type=int, default=3, help="runs of (c)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)
    import ray

    started = time.perf_counter()
    info: dict[str, Any] = {"samples": args.samples, "jobs": args.jobs, "ray": ray.__version__}
    info["load_start"] = load_average()
    python = host_python()
    env = job_path_env(python)
    netns = enter_network_namespace()
    cluster = DashboardCluster(workers=2, cpus=1, memory_gib=4, env={"PATH": env["PATH"]})
    paths = {label: Series(label) for label in (BARE, SHOAL, RAY_SDK)}
    timelines: list[dict[str, Any]] = []
    try:
        cluster.start()
        print(f"Ray cluster up at {cluster.address}", flush=True)
        with scratch("shoal-bench-ray-") as tmp:
            os.environ["SHOAL_RAY_ADDRESS"] = cluster.address
            with shoal_server(tmp) as server:
                jobs = ShoalJobs(server, tmp)
                peer = RayJobs(cluster.dashboard, env)
                try:
                    created = jobs.http.put("/api/v1/workspaces/default/computes/cpu-cluster", json=CLUSTER_YAML)
                    created.raise_for_status()
                    print("warming up (environments built on both nodes)", flush=True)
                    for _ in range(4):
                        shoal_first_line(jobs, Series("warm-up"), [])
                        peer.first_line(Series("warm-up"))
                    rng = random.Random(args.seed)
                    steps = {
                        BARE: lambda: bare([str(python), "-c", CODE], env, paths[BARE]),
                        SHOAL: lambda: shoal_first_line(jobs, paths[SHOAL], timelines),
                        RAY_SDK: lambda: peer.first_line(paths[RAY_SDK]),
                    }
                    order = list(steps)
                    for i in range(args.samples):
                        rng.shuffle(order)
                        for label in order:
                            steps[label]()
                        print(
                            f"  {i + 1}/{args.samples}: bare {ms(median(paths[BARE].printed))}, Shoal "
                            f"{ms(median(paths[SHOAL].printed))}, Ray {ms(median(paths[RAY_SDK].printed))} ms",
                            flush=True,
                        )
                    info["chain"] = []
                    for _ in range(args.chain_samples if args.chain_steps > 0 else 0):
                        info["chain"].append(shoal_chain(jobs, args.chain_steps))
                        c = info["chain"][-1]
                        print(
                            f"  chain of {c['steps']}: Shoal {c['shoal_s']:.2f} s, bare {c['bare_s']:.2f} s", flush=True
                        )
                    batches = []
                    runs = (lambda: shoal_batch(jobs, args.jobs), lambda: peer.batch(args.jobs))
                    for run in runs if args.jobs > 0 else ():
                        batches.append(run())
                        b = batches[-1]
                        print(
                            f"  {b.label}: {b.wall_s:.1f} s, idle {b.idle_s:.1f} slot-s, failed {b.failed}", flush=True
                        )
                finally:
                    jobs.close()
        info["worker_starts"] = worker_starts(cluster.root)
    finally:
        os.environ.pop("SHOAL_RAY_ADDRESS", None)
        cluster.stop()
        netns.leave()
    info["total_s"] = time.perf_counter() - started
    text = report(paths, timelines, batches, info)
    print()
    print(text)
    write_section("ray_compute", text, args.out)
    print(f"\nwrote the ray_compute section of {args.out}")
    print(json.dumps({k: median(s.printed) for k, s in paths.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
