"""Pipelines: what scheduling a step costs, and how fast an unchanged pipeline comes back from reuse.

    .venv/bin/python benchmarks/pipelines.py [--steps 100] [--samples 3]

A pipeline of ``--steps`` no-op command steps (``python -c pass``) on the local compute with a
cached environment (the host interpreter), in two shapes:

- **chain**: each step takes the previous step's output as its input (one after the other);
- **fan-out**: one root step, every other step takes its output (they run side by side).

Each shape runs against the same command lines started bare, by ``bash -c`` from this process with
folders of their own for inputs and outputs (the chain one after the other, the fan-out all at once
after the root), the floor. Per-step scheduling overhead is
``(Shoal wall time - bare wall time) / steps``: it holds the runner's start, the runner's
reports and the controller's work, measured from submit to the pipeline's ``Completed``. Then the
same pipeline is submitted again unchanged: every step is reused and the pipeline must complete
(target: under 2 s for 100 steps). Each run uses fresh parameter values so that the first run of a
sample never reuses an earlier sample's steps. Medians over ``--samples``; the run rewrites only its
own section of ``docs/benchmarks.md`` (``<!-- pipelines:begin -->`` ... ``<!-- pipelines:end -->``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from _common import load_average, machine, median, ms, p95, scratch, shoal_server, today, write_section
from job_start import CODE, Series, ShoalJobs, host_python, job_path_env
from job_start import bare as bare_job

# The interpreter jobs run `python` on (as in job_start.py): the host's, not this venv's, which a
# sandboxed job (SHOAL_JOB_ISOLATION=auto) does not see.
PYTHON = str(host_python())
ENV = {"image": "python:3.11"}


def spec(shape: str, steps: int, salt: str) -> dict[str, Any]:
    # Every step writes something of its own: identical steps would (rightly) reuse each other.
    def command(i: int) -> str:
        return f"python -c pass && echo {salt}-{i} > ${{{{outputs.o}}}}/x"

    jobs: dict[str, Any] = {"s0": {"command": command(0), "environment": ENV, "outputs": {"o": None}}}
    for i in range(1, steps):
        upstream = f"s{i - 1}" if shape == "chain" else "s0"
        jobs[f"s{i}"] = {
            "command": command(i) + " && ls ${{inputs.x}} > /dev/null",
            "environment": ENV,
            "inputs": {"x": f"${{{{parent.jobs.{upstream}.outputs.o}}}}"},
            "outputs": {"o": None},
        }
    return {"type": "pipeline", "experiment_name": "bench-pipelines", "jobs": jobs}


def bare(shape: str, steps: int) -> float:
    """The same command lines as the steps' (``spec``), run by ``bash -c`` with real folders for
    their inputs and outputs: the chain one after the other, the fan-out all at once after s0."""
    with scratch("shoal-bench-bare-") as tmp:

        def line(i: int, upstream: int | None) -> list[str]:
            (tmp / f"o{i}").mkdir()
            cmd = f"{PYTHON} -c pass && echo bare-{i} > {tmp}/o{i}/x"
            if upstream is not None:
                cmd += f" && ls {tmp}/o{upstream} > /dev/null"
            return ["bash", "-c", cmd]

        started = time.perf_counter()
        subprocess.run(line(0, None), check=True)
        if shape == "chain":
            for i in range(1, steps):
                subprocess.run(line(i, i - 1), check=True)
        else:
            procs = [subprocess.Popen(line(i, 0)) for i in range(1, steps)]
            for proc in procs:
                proc.wait()
        return time.perf_counter() - started


def run_pipeline(http: httpx.Client, base: str, body: dict[str, Any], timeout: float = 900) -> tuple[float, dict]:
    started = time.perf_counter()
    response = http.post(f"{base}/jobs", json=body)
    response.raise_for_status()
    name = response.json()["name"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"{base}/jobs/{name}").json()
        if job["status"] in ("Completed", "Failed", "Canceled"):
            elapsed = time.perf_counter() - started
            if job["status"] != "Completed":
                raise RuntimeError(f"pipeline {name} ended {job['status']}: {job.get('error')}")
            return elapsed, job
        # A tenth of a second: at most 1 ms a step of a 100-step pipeline, in the pipeline's
        # disfavour. Each poll reads the pipeline's whole body; at every 20 ms the submitter's own
        # polls took about 8 % of the server's time away from the steps.
        time.sleep(0.1)
    raise RuntimeError(f"pipeline {name} did not finish within {timeout} s")


def steps_of(http: httpx.Client, base: str, name: str) -> list[dict[str, Any]]:
    found, token = [], None
    while True:
        page = http.get(
            f"{base}/jobs",
            params={"parent_job_name": name, "max_results": 100, **({"page_token": token} if token else {})},
        ).json()
        found += page["value"]
        token = page.get("next_page_token") or page.get("nextLink")
        if not token:
            return found


def reused_count(http: httpx.Client, base: str, name: str) -> int:
    return sum(bool((j.get("properties") or {}).get("reuse", {}).get("reused")) for j in steps_of(http, base, name))


# A chain step's life from its steps' recorded status times, in the order the steps ran.
STEP_SEGMENTS = (
    (
        "previous step Completed → Queued (the runner's report wakes the dispatcher; controller: inputs, reuse key)",
        "prev",
        "Queued",
    ),
    ("Queued → Preparing (claimed, runner forked)", "Queued", "Preparing"),
    ("Preparing → Running (runner: run spec, env layer, input download, Running report)", "Preparing", "Running"),
    (
        "Running → Completed (the command in its sandbox: bash, python, echo, ls; then the output upload and "
        "the Completed report, which records Finalizing on its way when the upload is quick)",
        "Running",
        "Completed",
    ),
    ("a step, previous Completed → Completed", "prev", "Completed"),
)


def chain_segments(steps: list[dict[str, Any]]) -> dict[str, list[float]]:
    def stamps(job: dict[str, Any]) -> dict[str, float]:
        props = job.get("properties") or {}
        return {
            k.rsplit(".", 1)[1]: dt.datetime.fromisoformat(v).timestamp()
            for k, v in props.items()
            if "status_time" in k
        }

    ordered = sorted((stamps(j) for j in steps), key=lambda t: t.get("Queued", 0.0))
    out: dict[str, list[float]] = {label: [] for label, _, _ in STEP_SEGMENTS}
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        cur = {**cur, "prev": prev.get("Completed", math.nan)}
        for label, a, b in STEP_SEGMENTS:
            if a in cur and b in cur:
                out[label].append(cur[b] - cur[a])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument(
        "--job-samples", type=int, default=10, help="single jobs measured for the job start overhead (same server)"
    )
    parser.add_argument(
        "--out", default=None, help="file whose section to rewrite (default docs/benchmarks.md; - for none)"
    )
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    timeline: dict[str, list[float]] = {}
    reuse_ok: dict[str, list[int]] = {}
    with scratch("shoal-bench-pipelines-") as tmp, shoal_server(tmp) as server:
        base = f"{server.url}/api/v1/workspaces/default"
        with httpx.Client(headers=server.headers, timeout=60) as http:
            run_pipeline(http, base, spec("chain", 3, "warm-up"))  # first runner start, page caches
            # The job start overhead on this server, this run (as benchmarks/job_start.py measures it):
            # what a step's overhead is held against.
            jobs = ShoalJobs(server, tmp)
            floor, sdk = Series("bare"), Series("sdk")
            try:
                jobs.quiet(Series("warm-up"))  # the SDK's own first call
                for _ in range(args.job_samples):
                    bare_job([PYTHON, "-c", CODE], job_path_env(host_python()), floor)
                    jobs.quiet(sdk)
            finally:
                jobs.close()
            job_start = median(sdk.printed) - median(floor.printed)
            print(f"job start overhead: {job_start * 1000:.0f} ms", flush=True)
            for shape in ("chain", "fan-out"):
                rows = results.setdefault(shape, {"bare": [], "shoal": [], "reuse": []})
                for sample in range(args.samples):
                    rows["bare"].append(bare(shape, args.steps))
                    body = spec(shape, args.steps, f"{shape}-{sample}-{time.time_ns()}")
                    first, ran = run_pipeline(http, base, body)
                    rows["shoal"].append(first)
                    if shape == "chain":
                        for label, values in chain_segments(steps_of(http, base, ran["name"])).items():
                            timeline.setdefault(label, []).extend(values)
                    again, job = run_pipeline(http, base, body)
                    rows["reuse"].append(again)
                    reuse_ok.setdefault(shape, []).append(reused_count(http, base, job["name"]))
                    print(
                        f"{shape} sample {sample}: bare {rows['bare'][-1]:.2f} s, shoal {first:.2f} s, "
                        f"resubmitted {again:.2f} s ({reuse_ok[shape][-1]} reused)",
                        flush=True,
                    )
    lines = [
        "## Pipelines: scheduling overhead per step and reuse",
        "",
        f"`benchmarks/pipelines.py --steps {args.steps} --samples {args.samples}` — {today()}; {machine()}; "
        f"load average at the end {load_average()}.",
        "",
        f"A {args.steps}-step pipeline of no-op command steps (`python -c pass`, local compute, environment cached), "
        "as a chain (each step reads the previous one's output) and a fan-out (every step reads the first one's). "
        "Bare: the same command lines run by `bash -c` from the benchmark, with folders of their own for inputs "
        "and outputs (the chain in sequence, the fan-out all at once). "
        "Overhead per step = (Shoal − bare) / steps. Resubmitted: the same pipeline again, every step reused. "
        f"Job start overhead: a single command job's first line printed − the same command's bare, on the same "
        f"server in the same run ({args.job_samples} jobs, as in `benchmarks/job_start.py`): "
        f"**{job_start * 1000:.0f} ms**. Medians.",
        "",
        "| shape | bare | Shoal, first run | overhead per step | per step − job start overhead "
        "| resubmitted (all reused) | steps reused |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for shape, rows in results.items():
        b, s, r = median(rows["bare"]), median(rows["shoal"]), median(rows["reuse"])
        per_step = (s - b) / args.steps
        lines.append(
            f"| {shape} | {b:.2f} s | {s:.2f} s | {per_step * 1000:.0f} ms | "
            f"{(per_step - job_start) * 1000:+.0f} ms | {r:.2f} s | {min(reuse_ok[shape])}/{args.steps} |"
        )
    chain = (median(results["chain"]["shoal"]) - median(results["chain"]["bare"])) / args.steps - job_start
    lines += [
        "",
        f"Where a chain step's time goes (first runs, {len(timeline.get(STEP_SEGMENTS[-1][0], []))} steps, from "
        "their recorded status times), milliseconds:",
        "",
        "| segment | median | p95 |",
        "|---|---:|---:|",
        *[
            f"| {label} | {ms(median(timeline.get(label, [])))} | {ms(p95(timeline.get(label, [])))} |"
            for label, _, _ in STEP_SEGMENTS
        ],
    ]
    lines += [
        "",
        "Targets: an unchanged 100-step pipeline completes from reuse in under 2 s; a chain step costs at most "
        f"20 ms more than a job's start (issue #11) — **{'met' if chain <= 0.020 else 'NOT met'}: "
        f"{chain * 1000:+.0f} ms**.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.out != "-":
        write_section("pipelines", body, *([Path(args.out)] if args.out else []))


if __name__ == "__main__":
    main()
