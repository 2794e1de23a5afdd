"""The workspace as an MLflow tracking server, side by side with ``mlflow server``.

    .venv/bin/python benchmarks/tracking.py [--runs 10000] [--points 100000] [--out docs/benchmarks.md]

Starts a real Shoal server (own SHOAL_HOME) and ``mlflow server --backend-store-uri
sqlite:///<tmp>/mlflow.db --workers 1`` (job runner off, artifacts proxied to a local folder),
both on 127.0.0.1, and drives both with the same real ``MlflowClient`` (this venv's MLflow):

1. single ``log_metric`` calls, one after the other (calls/s);
2. ``log_batch`` of 1,000 metrics (metrics/s);
3. ``get_metric_history`` of one metric with ``--points`` points (ms; the client pages by itself);
4. ``search_runs`` over ``--runs`` runs with a filter on a param and a metric, ordered by the
   metric, first 100 (ms); the runs are made with ``create_run`` + ``log_batch`` on ``--threads``
   connections, within ``--create-budget`` seconds per system (past it both are measured at the
   count MLflow reached, and the section says so);
5. a ``--artifact-mb`` MB ``log_artifact`` (MB/s), where Shoal's artifact proxy answers, and a plain
   ``cp`` of the same bytes as the physical limit;
6. the client alone: 1, 2, 3 and 5 through the same ``MlflowClient`` against ``_nullserver.py`` (its own
   process, answering at once), in the same rounds: the floor under any server's figure through that
   client, and so the best ratio any server could show against MLflow's.

Timed operations alternate between the systems round by round. The run prints a table and
rewrites only its own section of ``docs/benchmarks.md`` (``<!-- tracking:begin -->`` … ``end``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    DOCS,
    Server,
    find_mlflow,
    load_average,
    machine,
    median,
    mlflow_server,
    mlflow_version,
    ms,
    p95,
    scratch,
    shoal_server,
    today,
    wait_until_answers,
    write_section,
)

TARGETS = {  # Shoal / MLflow, from issue 4
    "single": 2.0,
    "batch": 10.0,
    "history": 5.0,
    "search": 5.0,
    "artifact": 3.0,
}
FILTER = "params.group = 'g3' and metrics.acc > 0.5"
ORDER = ["metrics.acc DESC"]


@dataclass
class Side:
    label: str
    server: Server
    uri: str
    client: Any = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    create_s: float = math.nan
    http: httpx.Client | None = None
    # The floor: MlflowClient against a null server (no raw-HTTP rows, no search for it).
    null: NullServer | None = None

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)


# -- measurements ---------------------------------------------------------------------------------


def _metrics(key: str, start: int, count: int, keys: int = 1) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(f"{key}{i % keys}" if keys > 1 else key, random.random(), now, start + i) for i in range(count)]


def measure_single(sides: list[Side], rounds: int, calls: int) -> None:
    runs = {s.label: s.client.create_run(s.exp).info.run_id for s in sides}
    for side in sides:  # warm-up
        for i in range(10):
            side.client.log_metric(runs[side.label], "warm", i, step=i)
    for r in range(rounds):
        for side in sides if r % 2 == 0 else reversed(sides):
            run = runs[side.label]
            lat = []
            start = time.perf_counter()
            for i in range(calls):
                t0 = time.perf_counter()
                side.client.log_metric(run, "single", float(i), step=r * calls + i)
                lat.append(time.perf_counter() - t0)
            side.add("single_rate", calls / (time.perf_counter() - start))
            side.samples.setdefault("single_lat", []).extend(lat)


def _raw(side: Side) -> httpx.Client:
    """A keep-alive connection to the MLflow REST API, for timings without the client's own work."""
    if side.http is None:
        side.http = httpx.Client(base_url=side.uri + "/api/2.0/mlflow", headers=side.server.headers, timeout=600)
    return side.http


def measure_batch(sides: list[Side], batches: int) -> None:
    runs = {s.label: s.client.create_run(s.exp).info.run_id for s in sides}
    for b in range(batches):
        for side in sides if b % 2 == 0 else reversed(sides):
            metrics = _metrics("batch", b * 100, 1000, keys=10)  # 10 keys × 100 steps
            t0 = time.perf_counter()
            side.client.log_batch(runs[side.label], metrics=metrics)
            side.add("batch", time.perf_counter() - t0)
            if side.null is not None:
                continue
            # The same kind of batch as ready JSON over raw HTTP: the server's share alone.
            now = int(time.time() * 1000)
            body = json.dumps(
                {
                    "run_id": runs[side.label],
                    "metrics": [
                        {"key": f"raw{i % 10}", "value": random.random(), "timestamp": now, "step": b * 100 + i // 10}
                        for i in range(1000)
                    ],
                }
            ).encode()
            t0 = time.perf_counter()
            reply = _raw(side).post("/runs/log-batch", content=body, headers={"Content-Type": "application/json"})
            side.add("batch_raw", time.perf_counter() - t0)
            reply.raise_for_status()


def fill_history(side: Side, points: int) -> str:
    run = side.client.create_run(side.exp).info.run_id
    start = time.perf_counter()
    for b in range(0, points, 1000):
        side.client.log_batch(run, metrics=_metrics("hist", b, min(1000, points - b)))
    side.add("fill", time.perf_counter() - start)
    return run


def measure_history(sides: list[Side], points: int, samples: int) -> None:
    runs = {}
    for side in sides:
        print(f"  {side.label}: logging {points:,} points", flush=True)
        runs[side.label] = fill_history(side, points)
    for side in sides:  # the null server answers with the bytes Shoal sends
        if side.null is not None:
            reply = _raw(sides[0]).get("/metrics/get-history", params={"run_id": runs["Shoal"], "metric_key": "hist"})
            side.null.set_history(reply.raise_for_status().content)
    for r in range(samples):
        for side in sides if r % 2 == 0 else reversed(sides):
            t0 = time.perf_counter()
            got = side.client.get_metric_history(runs[side.label], "hist")
            side.add("history", time.perf_counter() - t0)
            if len(got) != points:
                raise RuntimeError(f"{side.label}: history has {len(got)} points, not {points}")
            if side.null is not None:
                continue
            t0 = time.perf_counter()
            reply = _raw(side).get("/metrics/get-history", params={"run_id": runs[side.label], "metric_key": "hist"})
            side.add("history_raw", time.perf_counter() - t0)
            reply.raise_for_status()


def create_runs(side: Side, count: int, threads: int, budget: float) -> int:
    """``count`` runs in a fresh experiment, each with a param and a metric; stops at ``budget`` s."""
    from mlflow.entities import Metric, Param

    side.search_exp = side.client.create_experiment(f"search-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + budget
    made = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal made
        if time.monotonic() > deadline:
            return
        run = side.client.create_run(side.search_exp, run_name=f"r{i}").info.run_id
        now = int(time.time() * 1000)
        side.client.log_batch(
            run, metrics=[Metric("acc", random.random(), now, 0)], params=[Param("group", f"g{i % 10}")]
        )
        with lock:
            made += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    side.create_s = time.perf_counter() - start
    side.runs = made
    return made


def measure_search(sides: list[Side], samples: int) -> None:
    for r in range(samples):
        for side in sides if r % 2 == 0 else reversed(sides):
            t0 = time.perf_counter()
            found = side.client.search_runs([side.search_exp], filter_string=FILTER, order_by=ORDER, max_results=100)
            side.add("search", time.perf_counter() - t0)
            if not found:
                raise RuntimeError(f"{side.label}: the search found nothing")


def artifact_file(tmp: Path, mb: int) -> Path:
    path = tmp / f"artifact-{mb}mb.bin"
    with open(path, "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1024 * 1024))
    return path


def measure_artifacts(sides: list[Side], path: Path, samples: int, mb: int, cp: list[float]) -> None:
    usable = []
    small = path.parent / "probe.txt"
    small.write_text("probe")
    for side in sides:
        run = side.client.create_run(side.exp).info.run_id
        if side.null is not None:
            usable.append((side, run))
            continue
        try:
            side.client.log_artifact(run, str(small), "probe")
            names = [f.path for f in side.client.list_artifacts(run, "probe")]
            if "probe/probe.txt" not in names:
                raise RuntimeError(f"the uploaded file is not listed ({names})")
        except Exception as exc:  # noqa: BLE001 - no proxy: say so in the section
            side.notes["artifact"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            print(f"  {side.label}: artifact upload unavailable: {side.notes['artifact']}", flush=True)
            continue
        usable.append((side, run))
    for r in range(samples):
        for side, run in usable if r % 2 == 0 else list(reversed(usable)):
            t0 = time.perf_counter()
            side.client.log_artifact(run, str(path), f"big{r}")
            side.add("artifact", mb / (time.perf_counter() - t0))
        target = path.parent / f"cp-{r}.bin"
        t0 = time.perf_counter()
        subprocess.run(["cp", str(path), str(target)], check=True)
        cp.append(mb / (time.perf_counter() - t0))
        target.unlink()


# -- the client's own floor ----------------------------------------------------------------------


class NullServer:
    """``_nullserver.py`` in its own process (not sharing this interpreter's lock): it answers
    instantly with canned bodies (``{}``; a run; the history bytes Shoal sent), so ``MlflowClient``
    against it costs only the client's own work (building and encoding requests, sending, parsing
    answers), the floor under any server's figure through that client."""

    def __init__(self, *, uvicorn: bool = False) -> None:
        script = Path(__file__).with_name("_nullserver.py")
        argv = [sys.executable, str(script), "--run-id", "uvicorn" if uvicorn else "floor"]
        argv += ["--uvicorn"] if uvicorn else []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("http://"):
            self.close()
            raise RuntimeError("the null server did not start")
        wait_until_answers(self.proc, self.url + "/health", "the null server", Path(script), limit=30)  # type: ignore[arg-type]

    def set_history(self, body: bytes) -> None:
        httpx.put(self.url + "/__history", content=body, timeout=60).raise_for_status()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# -- report ---------------------------------------------------------------------------------------


def _rate(x: float, unit: str) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:,.0f} {unit}" if x >= 100 else f"{x:,.1f} {unit}"


def _times(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}×"


@dataclass
class Floor:
    """The same client calls against a null server: its figure and MLflow's over it (the best
    ratio a server on that floor could show)."""

    figure: str = ""
    ceiling: float = math.nan

    def cells(self) -> str:
        return f"{self.figure} | {'' if math.isnan(self.ceiling) else _times(self.ceiling)}"


@dataclass
class Row:
    op: str
    shoal: str
    mlflow: str
    better: float  # how many times faster Shoal is
    key: str  # target key ("" for none)
    client: Floor = field(default_factory=Floor)  # MlflowClient against _nullserver.py
    uvicorn: Floor = field(default_factory=Floor)  # … against a bare uvicorn app

    @property
    def name(self) -> str:
        return self.op.rsplit(", ", 1)[0]


def rows(shoal: Side, peer: Side | None, floors: list[Side], cp: list[float]) -> list[Row]:
    def med(side: Side | None, key: str) -> float:
        return median(side.samples.get(key, [])) if side is not None else math.nan

    def both_ms(key: str) -> tuple[str, str, float]:
        a, b = med(shoal, key), med(peer, key)
        pa = p95(shoal.samples.get(key, []))
        pb = p95(peer.samples.get(key, [])) if peer else math.nan
        return f"{ms(a)} ms ({ms(pa)})", (f"{ms(b)} ms ({ms(pb)})" if peer else "—"), b / a

    def rate_floors(key: str, unit: str, per: float = 1.0) -> list[Floor]:
        out = []
        for side in floors:
            f = per / med(side, key) if per != 1.0 else med(side, key)
            b = per / med(peer, key) if per != 1.0 else med(peer, key)
            out.append(Floor() if math.isnan(f) else Floor(_rate(f, unit), f / b))
        return out

    def time_floors(key: str) -> list[Floor]:
        return [
            Floor()
            if math.isnan(med(side, key))
            else Floor(f"{ms(med(side, key))} ms", med(peer, key) / med(side, key))
            for side in floors
        ]

    out = []
    a, b = med(shoal, "single_rate"), med(peer, "single_rate")
    out.append(
        Row(
            "single `log_metric`, calls/s",
            _rate(a, "/s"),
            _rate(b, "/s"),
            a / b,
            "single",
            *rate_floors("single_rate", "/s"),
        )
    )
    a, b = 1000 / med(shoal, "batch"), 1000 / med(peer, "batch")
    out.append(
        Row(
            "`log_batch` of 1,000 metrics, metrics/s",
            _rate(a, "/s"),
            _rate(b, "/s"),
            a / b,
            "batch",
            *rate_floors("batch", "/s", per=1000.0),
        )
    )
    a, b = 1000 / med(shoal, "batch_raw"), 1000 / med(peer, "batch_raw")
    out.append(
        Row(
            "… the same over raw HTTP (ready JSON, no client work), metrics/s",
            _rate(a, "/s"),
            _rate(b, "/s"),
            a / b,
            "batch",
        )
    )
    s, m, x = both_ms("history")
    out.append(Row("`get_metric_history`, ms (p95)", s, m, x, "history", *time_floors("history")))
    s, m, x = both_ms("history_raw")
    out.append(Row("… the same over raw HTTP (bytes received, no parsing), ms (p95)", s, m, x, "history"))
    s, m, x = both_ms("search")
    out.append(Row("`search_runs` with a filter, first 100, ms (p95)", s, m, x, "search"))
    a, b = med(shoal, "artifact"), med(peer, "artifact")
    out.append(
        Row(
            "`log_artifact` upload, MB/s",
            _rate(a, "MB/s"),
            _rate(b, "MB/s"),
            a / b,
            "artifact",
            *rate_floors("artifact", "MB/s"),
        )
    )
    out.append(Row("plain `cp` of the same bytes, MB/s", _rate(median(cp), "MB/s"), "", math.nan, ""))
    return out


def report(
    shoal: Side,
    peer: Side | None,
    floors: list[Side],
    peer_skip: str,
    cp: list[float],
    args: argparse.Namespace,
    total: float,
) -> str:
    table = [
        "| operation | Shoal | MLflow | Shoal vs MLflow | target | met | MlflowClient alone (null server) | best "
        "possible through MlflowClient | MlflowClient + bare uvicorn app | best possible on uvicorn |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    verdicts = []
    for row in rows(shoal, peer, floors, cp):
        target = TARGETS.get(row.key)
        floors_cells = f"{row.client.cells()} | {row.uvicorn.cells()}"
        if target is None:
            table.append(f"| {row.op} | {row.shoal} | {row.mlflow} | | | | {floors_cells} |")
            continue
        met = "—" if math.isnan(row.better) else ("yes" if row.better >= target else "**no**")
        table.append(
            f"| {row.op} | {row.shoal} | {row.mlflow} | {_times(row.better)} | ≥ {target:g}× | {met} | {floors_cells} |"
        )
        verdicts.append((row, target, met))
    cmd = "`.venv/bin/python benchmarks/tracking.py"
    for flag, default in (("runs", 10000), ("points", 100000), ("artifact_mb", 100)):
        if getattr(args, flag) != default:
            cmd += f" --{flag.replace('_', '-')} {getattr(args, flag)}"
    cmd += "`"
    scale = ""
    if args.runs != 10000 or args.points != 100000 or args.artifact_mb != 100:
        scale += (
            f" **Scaled down** by flags from the issue's 10,000 runs / 100,000 points / 100 MB to "
            f"{args.runs:,} runs, {args.points:,} points and {args.artifact_mb} MB."
        )
    searched = min(shoal.runs, peer.runs) if peer is not None else shoal.runs
    if searched < args.runs:
        scale += (
            f" **Search measured over {searched:,} runs, not {args.runs:,}**: MLflow created only "
            f"{peer.runs if peer else shoal.runs:,} within the {args.create_budget:.0f} s creation budget "
            "(`--create-budget`), and Shoal was given as many."
        )
    out = [
        "## The workspace as an MLflow tracking server (`benchmarks/tracking.py`)",
        "",
        f"Run {today()} on {machine()} (load average at the end: {load_average()}); {cmd}, total "
        f"{total / 60:.1f} min.{scale}",
        f"Client: this venv's MLflow {_client_version()} `MlflowClient`, the same code against both servers. "
        "Shoal: `python -m shoal.server.main`, SQLite, tracking URI `<server>/api/v1/workspaces/default/mlflow`, "
        "admin token in `MLFLOW_TRACKING_TOKEN`. "
        + (
            f"Peer: MLflow {peer.version} `mlflow server --backend-store-uri sqlite:///… --workers 1 "  # type: ignore[attr-defined]
            "--artifacts-destination …` (job runner off; artifacts through its `mlflow-artifacts` proxy)."
            if peer is not None
            else f"Peer: not measured ({peer_skip})."
        ),
        f"Server start until ready: Shoal {shoal.server.start_s:.1f} s"
        + (f", MLflow {peer.server.start_s:.1f} s" if peer else "")
        + ". Client, servers and the disk share the same cores; timed operations alternate between the systems.",
        "",
        "Medians; *Shoal vs MLflow* is how many times faster Shoal is (rate ratio, or MLflow's time / Shoal's).",
        "",
        *table,
        "",
        "Samples: single calls "
        f"{args.rounds} rounds of {args.calls} calls (per-call median: Shoal "
        f"{ms(median(shoal.samples.get('single_lat', [])))} ms"
        + (f", MLflow {ms(median(peer.samples.get('single_lat', [])))} ms" if peer else "")
        + f"); {args.batches} batches each; history {args.history_samples} and search {args.samples} reads each, "
        f"artifacts {args.artifact_samples} uploads each, `cp` {args.artifact_samples} copies. "
        f"History: one metric of {args.points:,} points, logged in batches of 1,000 (Shoal "
        f"{_fill(shoal, args.points)}" + (f", MLflow {_fill(peer, args.points)}" if peer else "") + "). "
        f"Search: `{FILTER}`, `order_by={ORDER}`, `max_results=100`, over {shoal.runs:,} runs of one experiment "
        f"(made with `create_run` + `log_batch` on {args.threads} threads: Shoal {_made(shoal)}"
        + (f", MLflow {_made(peer)}" if peer else "")
        + ").",
    ]
    for side in (shoal, peer):
        if side is not None and side.notes.get("artifact"):
            out.append("")
            out.append(
                f"{side.label}'s artifact upload was not measured: `log_artifact` failed with {side.notes['artifact']}."
            )
    if floors:
        out += [
            "",
            "*MlflowClient alone*: the same client calls, in the same rounds, against a null HTTP server in its own "
            "process (`benchmarks/_nullserver.py`) that reads each request and answers at once with a canned body "
            "(for the history, the bytes Shoal sent): the client's own cost, which any server's figure through "
            "`MlflowClient` includes. *MlflowClient + bare uvicorn app*: the same answers from a bare ASGI app under "
            "uvicorn as Shoal runs it (one worker, uvloop, httptools): what any server built on uvicorn pays before "
            "its own code runs. *Best possible*: MLflow's figure over that floor, the ratio a server with no cost "
            "of its own would show.",
        ]
    out += ["", "### Reading", "", reading(verdicts, shoal, peer, floors)]
    return "\n".join(out)


def _client_version() -> str:
    import mlflow

    return mlflow.__version__


def _fill(side: Side, points: int) -> str:
    fill = median(side.samples.get("fill", []))
    return "—" if math.isnan(fill) else f"{points / fill:,.0f} points/s"


def _made(side: Side) -> str:
    if not side.runs:
        return "—"
    return f"{side.runs:,} runs in {side.create_s:.0f} s, {side.runs / side.create_s:,.0f} runs/s"


def reading(verdicts: list[tuple[Row, float, str]], shoal: Side, peer: Side | None, floors: list[Side]) -> str:
    if peer is None:
        return "No peer was measured: the ratios and targets are empty."
    met = [v for v in verdicts if v[2] == "yes"]
    missed = [v for v in verdicts if v[2] == "**no**"]
    parts = [f"Targets met: {len(met)} of {len(met) + len(missed)}."]
    if missed:
        parts.append(
            "Missed: "
            + "; ".join(f"{row.op} ({row.better:.2f}×, target {target:g}×)" for row, target, _ in missed)
            + "."
        )
    # The client's own work (building and encoding protobuf messages, parsing the answer) is paid
    # by both systems alike: through MlflowClient no server can look faster than the client alone;
    # a server on uvicorn also pays uvicorn's own handling of each request and its body.
    capped = [(row, target) for row, target, _ in missed if row.client.ceiling < target]
    if capped:
        parts.append(
            "Out of reach through `MlflowClient` whatever the server does (the client alone, against a server "
            "that answers at once, is already below the target): "
            + "; ".join(
                f"{row.name} ({row.client.figure}, {row.client.ceiling:.2f}× MLflow's figure, target {target:g}×)"
                for row, target in capped
            )
            + "."
        )
    for row, _target, _ in missed:
        if any(row is r for r, _ in capped) or math.isnan(row.uvicorn.ceiling):
            continue
        of_bare = row.better / row.uvicorn.ceiling
        parts.append(
            f"{row.name}: a bare uvicorn app that only reads the request and answers gets {row.uvicorn.figure} "
            f"through the same client in the same rounds ({row.uvicorn.ceiling:.2f}× MLflow's figure), Shoal "
            f"{row.shoal} ({row.better:.2f}×, {of_bare:.0%} of the bare app's figure)"
            + (
                ": most of what is left is uvicorn's own request path, which MLflow's server (also on uvicorn) "
                "pays too."
                if of_bare >= 0.75
                else "."
            )
        )
    if any(not math.isnan(row.client.ceiling) for row, _, _ in verdicts):
        parts.append("The raw-HTTP rows measure the servers without the client's fixed cost.")

    def med(side: Side | None, key: str) -> float:
        return median(side.samples.get(key, [])) if side is not None else math.nan

    client = floors[0] if floors else None
    share = [
        (label, med(client, key), med(shoal, key))
        for label, key in (("a 1,000-metric `log_batch`", "batch"), ("the history read", "history"))
    ]
    if client is not None and all(not math.isnan(f) for _, f, _ in share):
        parts.append(
            "Through the client, "
            + "; ".join(
                f"{label} takes {ms(t)} ms on Shoal and {ms(f)} ms against the null server" for label, f, t in share
            )
            + "."
        )
    return " ".join(parts)


def find_server_mlflow(explicit: str | None) -> str | None:
    """An ``mlflow`` that can run a server: mlflow-skinny (this venv's client) has the CLI but not
    the server, so skip executables whose environment lacks the full ``mlflow`` distribution."""
    import shutil

    candidates = [explicit, os.environ.get("SHOAL_BENCH_MLFLOW"), find_mlflow(None), shutil.which("mlflow")]
    for exe in candidates:
        if exe and Path(exe).is_file() and mlflow_version(exe) != "unknown":
            return exe
    return None


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10000, help="runs to search over")
    parser.add_argument("--points", type=int, default=100000, help="points of the metric whose history is read")
    parser.add_argument("--artifact-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of single log_metric calls")
    parser.add_argument("--calls", type=int, default=100, help="log_metric calls per round")
    parser.add_argument("--batches", type=int, default=20, help="timed log_batch calls per system")
    parser.add_argument("--samples", type=int, default=15, help="timed search reads per system")
    parser.add_argument("--history-samples", type=int, default=5, help="timed history reads per system")
    parser.add_argument("--artifact-samples", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8, help="connections that create the runs")
    parser.add_argument("--create-budget", type=float, default=200, help="seconds each system may spend creating runs")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--mlflow", help="the mlflow executable (default: $SHOAL_BENCH_MLFLOW, venv, PATH)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI"):
        os.environ.pop(var, None)
    from mlflow.tracking import MlflowClient

    exe = find_server_mlflow(args.mlflow) if args.peer is not False else None
    peer_skip = "--no-peer" if args.peer is False else ("no mlflow server executable found" if exe is None else "")
    started = time.perf_counter()
    cp: list[float] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(scratch("shoal-bench-tracking-"))
        server = stack.enter_context(shoal_server(tmp))
        os.environ["MLFLOW_TRACKING_TOKEN"] = server.headers["Authorization"].split()[1]  # MLflow ignores it
        shoal = Side("Shoal", server, f"{server.url}/api/v1/workspaces/default/mlflow")
        sides = [shoal]
        peer: Side | None = None
        if exe is not None:
            print(f"starting mlflow server ({exe})", flush=True)
            pserver = stack.enter_context(mlflow_server(exe, tmp, proxied_artifacts=True))
            peer = Side("MLflow", pserver, pserver.url)
            peer.version = mlflow_version(exe)  # type: ignore[attr-defined]
            sides.append(peer)
        # The floor takes its turn in every round, so noise on the shared machine hits it alike.
        null = NullServer()
        stack.callback(null.close)
        floor = Side("client alone", Server(null.url, {}, os.getpid(), 0.0, tmp), null.url, null=null)
        bare = NullServer(uvicorn=True)
        stack.callback(bare.close)
        asgi = Side("bare uvicorn", Server(bare.url, {}, os.getpid(), 0.0, tmp), bare.url, null=bare)
        timed = [*sides, floor, asgi]
        for side in timed:
            side.client = MlflowClient(tracking_uri=side.uri)
            side.exp = side.client.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")  # type: ignore[attr-defined]
        steps: list[tuple[str, Callable[[], None]]] = [
            ("single log_metric", lambda: measure_single(timed, args.rounds, args.calls)),
            ("log_batch", lambda: measure_batch(timed, args.batches)),
            ("history", lambda: measure_history(timed, args.points, args.history_samples)),
        ]
        for name, fn in steps:
            print(f"{name}…", flush=True)
            fn()
        print("creating runs…", flush=True)
        target = args.runs
        for side in reversed(sides):  # the peer first: Shoal then makes as many as it reached
            made = create_runs(side, target, args.threads, args.create_budget)
            print(f"  {side.label}: {made:,} runs in {side.create_s:.0f} s", flush=True)
            target = min(target, made)
        print("search…", flush=True)
        measure_search(sides, args.samples)
        print("artifacts…", flush=True)
        artifact = artifact_file(tmp, args.artifact_mb)
        measure_artifacts(timed, artifact, args.artifact_samples, args.artifact_mb, cp)
    total = time.perf_counter() - started
    text = report(shoal, peer, [floor, asgi], peer_skip, cp, args, total)
    print()
    print(text)
    write_section("tracking", text, args.out)
    print(f"\nwrote the tracking section of {args.out} ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
