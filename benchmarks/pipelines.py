"""Pipelines: what scheduling a step costs, and how fast an unchanged pipeline comes back from reuse.

    .venv/bin/python benchmarks/pipelines.py [--steps 100] [--samples 3]

A pipeline of ``--steps`` no-op command steps (``python -c pass``) on the local compute with a
cached environment (the host interpreter), in two shapes:

- **chain**: each step takes the previous step's output as its input (one after the other);
- **fan-out**: one root step, every other step takes its output (they run side by side).

Each shape runs against the same steps started as bare subprocesses in this process (the chain one
after the other, the fan-out all at once after the root), the floor. Per-step scheduling overhead is
``(Shoal wall time - bare wall time) / steps``: it holds the runner's start, the runner's
reports and the controller's work, measured from submit to the pipeline's ``Completed``. Then the
same pipeline is submitted again unchanged: every step is reused and the pipeline must complete
(target: under 2 s for 100 steps). Each run uses fresh parameter values so that the first run of a
sample never reuses an earlier sample's steps. Medians over ``--samples``; the run rewrites only its
own section of ``docs/benchmarks.md`` (``<!-- pipelines:begin -->`` ... ``<!-- pipelines:end -->``).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from _common import load_average, machine, median, scratch, shoal_server, today, write_section
from job_start import host_python

# The interpreter jobs run `python` on (as in job_start.py): the host's, not this venv's, which a
# sandboxed job (SHOAL_JOB_ISOLATION=auto) does not see.
PYTHON = str(host_python())
NOOP = [PYTHON, "-c", "pass"]
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
    started = time.perf_counter()
    subprocess.run(NOOP, check=True)
    if shape == "chain":
        for _ in range(steps - 1):
            subprocess.run(NOOP, check=True)
    else:
        procs = [subprocess.Popen(NOOP) for _ in range(steps - 1)]
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
        time.sleep(0.02)
    raise RuntimeError(f"pipeline {name} did not finish within {timeout} s")


def reused_count(http: httpx.Client, base: str, name: str) -> int:
    count, token = 0, None
    while True:
        page = http.get(
            f"{base}/jobs",
            params={"parent_job_name": name, "max_results": 100, **({"page_token": token} if token else {})},
        ).json()
        count += sum(bool((j.get("properties") or {}).get("reuse", {}).get("reused")) for j in page["value"])
        token = page.get("next_page_token") or page.get("nextLink")
        if not token:
            return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument(
        "--out", default=None, help="file whose section to rewrite (default docs/benchmarks.md; - for none)"
    )
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    reuse_ok: dict[str, list[int]] = {}
    with scratch("shoal-bench-pipelines-") as tmp, shoal_server(tmp) as server:
        base = f"{server.url}/api/v1/workspaces/default"
        with httpx.Client(headers=server.headers, timeout=60) as http:
            run_pipeline(http, base, spec("chain", 3, "warm-up"))  # first runner start, page caches
            for shape in ("chain", "fan-out"):
                rows = results.setdefault(shape, {"bare": [], "shoal": [], "reuse": []})
                for sample in range(args.samples):
                    rows["bare"].append(bare(shape, args.steps))
                    body = spec(shape, args.steps, f"{shape}-{sample}-{time.time_ns()}")
                    first, _ = run_pipeline(http, base, body)
                    rows["shoal"].append(first)
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
        "Bare: the same processes started by `subprocess` (the chain in sequence, the fan-out all at once). "
        "Overhead per step = (Shoal − bare) / steps. Resubmitted: the same pipeline again, every step reused. "
        "Medians.",
        "",
        "| shape | bare | Shoal, first run | overhead per step | resubmitted (all reused) | steps reused |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape, rows in results.items():
        b, s, r = median(rows["bare"]), median(rows["shoal"]), median(rows["reuse"])
        per_step = (s - b) / args.steps
        lines.append(
            f"| {shape} | {b:.2f} s | {s:.2f} s | {per_step * 1000:.0f} ms | {r:.2f} s | "
            f"{min(reuse_ok[shape])}/{args.steps} |"
        )
    lines += [
        "",
        "Target: an unchanged 100-step pipeline completes from reuse in under 2 s.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.out != "-":
        write_section("pipelines", body, *([Path(args.out)] if args.out else []))


if __name__ == "__main__":
    main()
