"""Versioned assets at scale: does reading a model stay flat as its version count grows?

    .venv/bin/python benchmarks/assets.py [--count 10000] [--peer/--no-peer] [--out docs/benchmarks.md]

Starts a real Shoal server (own SHOAL_HOME) and, if an ``mlflow`` executable is found, an MLflow
tracking server with its model registry (``--workers 1``, SQLite), both on 127.0.0.1. For each:

1. one model name: create versions 1-100 one at a time (timing each create), then time get by
   version (random versions), get ``@latest``, list first page and list last page (100 a page;
   the walk to the last page is not timed, only the final request) — interleaved, ``--samples``
   rounds, medians and p95;
2. create versions up to ``--count`` (concurrently, ``--threads`` connections; throughput per batch
   of 500), the last 100 one at a time again, and time the same reads;
3. Shoal only (``--names``): the same for ``--count`` names with one version each (list names).

Shoal's reads are also timed in process against the same database (service layer, no HTTP), which
separates what the store does from what the request path costs. Everything goes through one
keep-alive ``httpx.Client`` per system. The run prints a table and rewrites only its own section of
``docs/benchmarks.md`` (``<!-- assets:begin -->`` … ``<!-- assets:end -->``).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import threading
import time
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
    ratio,
    scratch,
    shoal_server,
    timed,
    today,
    write_section,
)

MODEL = "bench-model"
SOURCE = "https://example.com/m.pkl"
PAGE = 100
BATCH = 500
SEQUENTIAL = 100  # creates timed one at a time before each checkpoint

GET = "get by version"
LATEST = "get @latest"
FIRST = "list versions, first page"
LAST = "list versions, last page"
FLOOR = "request floor (health)"
CREATE = "create next version"
READS = (GET, LATEST, FIRST, LAST)
NAMES_FIRST = "list names, first page"
NAMES_LAST = "list names, last page"
NAMES_LATEST = "get @latest, random name"
NAMES_GET = "get v1, random name"
CREATE_NAME = "create a new name"
NAME_READS = (NAMES_GET, NAMES_LATEST, NAMES_FIRST, NAMES_LAST)

Ops = dict[str, Callable[[], object]]


def check(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:300]}")
    return resp


# -- the two systems, behind one small interface -------------------------------------------------


class Shoal:
    label = "Shoal"

    def __init__(self, server: Server) -> None:
        self.base = server.url + "/api/v1/workspaces/default"
        self.server = server

    def client(self) -> httpx.Client:
        return httpx.Client(headers=self.server.headers, timeout=60)

    def setup(self, c: httpx.Client, name: str) -> None:
        pass

    def create(self, c: httpx.Client, name: str) -> None:
        body = {"name": name, "type": "custom_model", "path": SOURCE}
        check(c.post(f"{self.base}/models/{name}/versions", json=body))

    def latest(self, c: httpx.Client, name: str) -> int:
        return int(check(c.get(f"{self.base}/models/{name}/labels/latest")).json()["version"])

    def _walk(self, c: httpx.Client, params: dict[str, Any]) -> tuple[int, str | None, list[str]]:
        """Walk every page; return (pages, token of the last page, versions on the last page)."""
        token, pages = None, 0
        while True:
            body = check(c.get(f"{self.base}/models", params={**params, **self._token(token)})).json()
            pages += 1
            if not body["next_page_token"]:
                return pages, token, [str(v.get("version")) for v in body["value"]]
            token = body["next_page_token"]

    @staticmethod
    def _token(token: str | None) -> dict[str, str]:
        return {"page_token": token} if token else {}

    def read_ops(self, c: httpx.Client, name: str, n: int, rng: random.Random) -> tuple[Ops, dict[str, Any]]:
        listing = {"name": name, "max_results": PAGE}
        pages, last_token, last_versions = self._walk(c, listing)
        assert pages == math.ceil(n / PAGE) and "1" in last_versions, (pages, last_versions[-3:])
        first = check(c.get(f"{self.base}/models", params=listing)).json()["value"]
        assert [v["version"] for v in first[:2]] == [str(n), str(n - 1)], "list is not newest first"
        assert self.latest(c, name) == n
        ops: Ops = {
            GET: lambda: check(c.get(f"{self.base}/models/{name}/versions/{rng.randint(1, n)}")),
            LATEST: lambda: check(c.get(f"{self.base}/models/{name}/labels/latest")),
            FIRST: lambda: check(c.get(f"{self.base}/models", params=listing)),
            LAST: lambda: check(c.get(f"{self.base}/models", params={**listing, **self._token(last_token)})),
            FLOOR: lambda: check(c.get(self.server.url + "/api/v1/health")),
        }
        return ops, {"last_token": last_token}

    def name_ops(self, c: httpx.Client, names: list[str], rng: random.Random) -> tuple[Ops, dict[str, Any]]:
        listing = {"max_results": PAGE}
        pages, last_token, _ = self._walk(c, listing)
        total = len(names) + 1  # + the many-versions model of the first shape
        assert pages == math.ceil(total / PAGE), (pages, total)
        ops: Ops = {
            NAMES_GET: lambda: check(c.get(f"{self.base}/models/{rng.choice(names)}/versions/1")),
            NAMES_LATEST: lambda: check(c.get(f"{self.base}/models/{rng.choice(names)}/labels/latest")),
            NAMES_FIRST: lambda: check(c.get(f"{self.base}/models", params=listing)),
            NAMES_LAST: lambda: check(c.get(f"{self.base}/models", params={**listing, **self._token(last_token)})),
        }
        return ops, {"last_token": last_token}


class Mlflow:
    label = "MLflow"

    def __init__(self, server: Server) -> None:
        self.base = server.url + "/api/2.0/mlflow"
        self.server = server

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=60)

    def setup(self, c: httpx.Client, name: str) -> None:
        check(c.post(f"{self.base}/registered-models/create", json={"name": name}))

    def create(self, c: httpx.Client, name: str) -> None:
        body = {"name": name, "source": SOURCE}
        for attempt in range(10):  # SQLite under concurrent writers: retry what the server refused
            resp = c.post(f"{self.base}/model-versions/create", json=body)
            if resp.status_code < 300 or attempt == 9 or resp.status_code < 500:
                check(resp)
                return
            time.sleep(0.05 * (attempt + 1))

    def latest(self, c: httpx.Client, name: str) -> int:
        body = check(c.post(f"{self.base}/registered-models/get-latest-versions", json={"name": name})).json()
        return max(int(v["version"]) for v in body["model_versions"])

    def read_ops(self, c: httpx.Client, name: str, n: int, rng: random.Random) -> tuple[Ops, dict[str, Any]]:
        search = {"filter": f"name='{name}'", "max_results": PAGE, "order_by": "version_number DESC"}
        url = f"{self.base}/model-versions/search"
        token, pages, last_token, last_page = None, 0, None, []
        while True:
            body = check(c.get(url, params={**search, **({"page_token": token} if token else {})})).json()
            pages += 1
            if body.get("model_versions"):  # a final empty page may follow a full one
                last_token, last_page = token, body["model_versions"]
            if not body.get("next_page_token"):
                break
            token = body["next_page_token"]
        assert "1" in [v["version"] for v in last_page], "last page lacks version 1"
        first = check(c.get(url, params=search)).json()["model_versions"]
        assert [v["version"] for v in first[:2]] == [str(n), str(n - 1)], "search is not newest first"
        assert self.latest(c, name) == n
        last = {**search, **({"page_token": last_token} if last_token else {})}
        ops: Ops = {
            GET: lambda: check(
                c.get(f"{self.base}/model-versions/get", params={"name": name, "version": rng.randint(1, n)})
            ),
            LATEST: lambda: check(c.post(f"{self.base}/registered-models/get-latest-versions", json={"name": name})),
            FIRST: lambda: check(c.get(url, params=search)),
            LAST: lambda: check(c.get(url, params=last)),
            FLOOR: lambda: check(c.get(self.server.url + "/health")),
        }
        return ops, {"last_token": last_token, "pages": pages}


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    n: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    inproc: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Result:
    system: str
    version: str = ""
    start_s: float = math.nan
    checkpoints: list[Checkpoint] = field(default_factory=list)
    bulk_rates: list[float] = field(default_factory=list)
    bulk_seconds: float = 0.0
    note: str = ""
    names: list[Checkpoint] = field(default_factory=list)
    name_rates: list[float] = field(default_factory=list)


def interleaved(ops: Ops, samples: int, rng: random.Random) -> dict[str, list[float]]:
    """Time every op ``samples`` times, in a shuffled order each round, after a short warm-up."""
    names = list(ops)
    for _ in range(5):
        for op in names:
            ops[op]()
    out: dict[str, list[float]] = {op: [] for op in names}
    for _ in range(samples):
        rng.shuffle(names)
        for op in names:
            out[op].append(timed(ops[op]))
    return out


def sequential(system: Shoal | Mlflow, c: httpx.Client, names: list[str]) -> list[float]:
    return [timed(lambda name=name: system.create(c, name)) for name in names]


def bulk(system: Shoal | Mlflow, names: list[str], threads: int) -> tuple[list[float], float]:
    """Create one version per entry of ``names`` over ``threads`` connections; rates per batch."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def one(name: str) -> None:
        if not hasattr(local, "c"):
            local.c = system.client()
            with lock:
                clients.append(local.c)
        system.create(local.c, name)

    rates: list[float] = []
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            for i in range(0, len(names), BATCH):
                chunk = names[i : i + BATCH]
                t0 = time.perf_counter()
                list(pool.map(one, chunk))
                rates.append(len(chunk) / (time.perf_counter() - t0))
                done = i + len(chunk)
                if done % 2000 == 0 or done == len(names):
                    print(f"    {done:,}/{len(names):,} created, {rates[-1]:.0f}/s", flush=True)
    finally:
        for c in clients:
            c.close()
    return rates, time.perf_counter() - started


class InProcess:
    """Shoal's service layer on the server's own SQLite file: the same reads without HTTP."""

    def __init__(self, home: Path) -> None:
        from shoal.config import ShoalSettings
        from shoal.services.assets import versions as assets
        from shoal.services.context import ServiceContext

        self.assets = assets
        self.ctx = ServiceContext.from_settings(ShoalSettings(home=home))

    def ops(self, name: str, n: int, last_token: str | None, rng: random.Random) -> Ops:
        a, ctx = self.assets, self.ctx
        return {
            GET: lambda: a.resolve(ctx, "default", "model", name, version=str(rng.randint(1, n))),
            LATEST: lambda: a.resolve(ctx, "default", "model", name, label="latest"),
            FIRST: lambda: a.list_page(ctx, "default", "model", name=name, max_results=PAGE),
            LAST: lambda: a.list_page(ctx, "default", "model", name=name, max_results=PAGE, page_token=last_token),
        }

    def name_ops(self, names: list[str], last_token: str | None, rng: random.Random) -> Ops:
        a, ctx = self.assets, self.ctx
        return {
            NAMES_GET: lambda: a.resolve(ctx, "default", "model", rng.choice(names), version="1"),
            NAMES_LATEST: lambda: a.resolve(ctx, "default", "model", rng.choice(names), label="latest"),
            NAMES_FIRST: lambda: a.list_page(ctx, "default", "model", max_results=PAGE),
            NAMES_LAST: lambda: a.list_page(ctx, "default", "model", max_results=PAGE, page_token=last_token),
        }

    def close(self) -> None:
        self.ctx.close()


def grow_plan(count: int) -> list[int]:
    return [n for n in (1000, 2000) if n < count] + [count]


def run_versions(
    system: Shoal | Mlflow,
    result: Result,
    args: argparse.Namespace,
    inproc: InProcess | None,
    budget_s: float | None,
) -> None:
    """One model name: checkpoint at 100, then grow (within ``budget_s`` of creating) and again."""
    rng = random.Random(args.seed)
    with system.client() as c:
        system.setup(c, MODEL)
        created = 0
        for target in [min(100, args.count), args.count]:
            if target <= created:
                continue
            if budget_s is not None and created:
                target, created = afford(system, result, args, created, budget_s)
            if target - SEQUENTIAL > created:
                print(f"  {system.label}: creating versions {created + 1:,}-{target - SEQUENTIAL:,}", flush=True)
                rates, secs = bulk(system, [MODEL] * (target - SEQUENTIAL - created), args.threads)
                result.bulk_rates += rates
                result.bulk_seconds += secs
                created = target - SEQUENTIAL
            point = Checkpoint(target)
            point.samples[CREATE] = sequential(system, c, [MODEL] * (target - created))
            created = target
            print(f"  {system.label}: timing reads at {target:,} versions", flush=True)
            ops, info = system.read_ops(c, MODEL, target, rng)
            point.samples.update(interleaved(ops, args.samples, rng))
            if inproc is not None:
                point.inproc = interleaved(inproc.ops(MODEL, target, info["last_token"], rng), args.samples, rng)
            result.checkpoints.append(point)


def afford(
    system: Shoal | Mlflow, result: Result, args: argparse.Namespace, created: int, budget_s: float
) -> tuple[int, int]:
    """The peer grows to --count if creating that many fits the budget, else to 2,000 or 1,000.

    Returns the target and how many versions now exist (the probe creates some).
    """
    plan = grow_plan(args.count)
    if len(plan) == 1:
        return plan[0], created
    probe = plan[0] - SEQUENTIAL
    print(f"  {system.label}: probing creation speed up to {probe:,} versions", flush=True)
    rates, secs = bulk(system, [MODEL] * (probe - created), args.threads)
    result.bulk_rates += rates
    result.bulk_seconds += secs
    rate = (probe - created) / secs
    chosen = plan[0]
    for n in plan[1:]:
        if result.bulk_seconds + (n - probe) / rate <= budget_s:
            chosen = n
    if chosen != args.count:
        projected = result.bulk_seconds + (args.count - probe) / rate
        result.note = (
            f"{system.label} created {rate:.0f} versions/s here: reaching {args.count:,} would have taken "
            f"about {projected / 60:.1f} min of creating, over the {budget_s / 60:.1f}-min budget "
            f"(--peer-budget), so it was measured at {chosen:,} versions."
        )
        print("  " + result.note, flush=True)
    return chosen, probe


def run_names(system: Shoal, result: Result, args: argparse.Namespace, inproc: InProcess | None) -> None:
    """Many names, one version each: list names (first/last page), get @latest of a random name."""
    rng = random.Random(args.seed + 1)
    all_names = [f"name-{i:05d}" for i in range(1, args.count + 1)]
    with system.client() as c:
        created = 0
        for target in [min(100, args.count), args.count]:
            if target <= created:
                continue
            if target - SEQUENTIAL > created:
                print(f"  {system.label}: creating names {created + 1:,}-{target - SEQUENTIAL:,}", flush=True)
                rates, _ = bulk(system, all_names[created : target - SEQUENTIAL], args.threads)
                result.name_rates += rates
                created = target - SEQUENTIAL
            point = Checkpoint(target)
            point.samples[CREATE_NAME] = sequential(system, c, all_names[created:target])
            created = target
            print(f"  {system.label}: timing reads at {target:,} names", flush=True)
            names = all_names[:target]
            ops, info = system.name_ops(c, names, rng)
            point.samples.update(interleaved(ops, args.samples, rng))
            if inproc is not None:
                point.inproc = interleaved(inproc.name_ops(names, info["last_token"], rng), args.samples, rng)
            result.names.append(point)


# -- reporting -----------------------------------------------------------------------------------


def cell(samples: list[float] | None) -> str:
    if not samples:
        return "—"
    return f"{ms(median(samples))} ({ms(p95(samples))})"


def med(point: Checkpoint | None, op: str, inproc: bool = False) -> float:
    if point is None:
        return math.nan
    samples = (point.inproc if inproc else point.samples).get(op)
    return median(samples) if samples else math.nan


def versions_table(shoal: Result, peer: Result | None) -> str:
    s0, s1 = shoal.checkpoints[0], shoal.checkpoints[-1]
    head = f"| operation | Shoal @{s0.n:,} | Shoal @{s1.n:,} | Shoal {s1.n:,}/{s0.n:,} |"
    rule = "|---|---:|---:|---:|"
    if peer is not None:
        p0, p1 = peer.checkpoints[0], peer.checkpoints[-1]
        head += (
            f" MLflow @{p0.n:,} | MLflow @{p1.n:,} | MLflow {p1.n:,}/{p0.n:,} |"
            f" Shoal/MLflow @{s0.n:,} | Shoal @{s1.n:,}/MLflow @{p1.n:,} |"
        )
        rule += "---:|---:|---:|---:|---:|"
    lines = [head, rule]
    for op in (*READS, CREATE, FLOOR):
        row = f"| {op} | {cell(s0.samples.get(op))} | {cell(s1.samples.get(op))} | {ratio(med(s1, op), med(s0, op))} |"
        if peer is not None:
            p0, p1 = peer.checkpoints[0], peer.checkpoints[-1]
            row += (
                f" {cell(p0.samples.get(op))} | {cell(p1.samples.get(op))} | "
                f"{ratio(med(p1, op), med(p0, op))} | {ratio(med(s0, op), med(p0, op))} | "
                f"{ratio(med(s1, op), med(p1, op))} |"
            )
        lines.append(row)
    return "\n".join(lines)


def inproc_table(points: list[Checkpoint], ops: tuple[str, ...], unit: str) -> str:
    a, b = points[0], points[-1]
    lines = [
        f"| operation | @{a.n:,} {unit} | @{b.n:,} {unit} | {b.n:,}/{a.n:,} |",
        "|---|---:|---:|---:|",
    ]
    for op in ops:
        lines.append(
            f"| {op} | {cell(a.inproc.get(op))} | {cell(b.inproc.get(op))} | "
            f"{ratio(med(b, op, True), med(a, op, True))} |"
        )
    return "\n".join(lines)


def names_table(points: list[Checkpoint]) -> str:
    a, b = points[0], points[-1]
    lines = [
        f"| operation | HTTP @{a.n:,} names | HTTP @{b.n:,} names | {b.n:,}/{a.n:,} | "
        f"in process @{a.n:,} | in process @{b.n:,} | {b.n:,}/{a.n:,} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for op in (*NAME_READS, CREATE_NAME):
        lines.append(
            f"| {op} | {cell(a.samples.get(op))} | {cell(b.samples.get(op))} | "
            f"{ratio(med(b, op), med(a, op))} | {cell(a.inproc.get(op))} | {cell(b.inproc.get(op))} | "
            f"{ratio(med(b, op, True), med(a, op, True))} |"
        )
    return "\n".join(lines)


def throughput(result: Result, threads: int) -> str:
    if not result.bulk_rates:
        return "—"
    return f"{median(result.bulk_rates):,.0f} versions/s ({threads} connections, median of batches of {BATCH})"


def reading(shoal: Result, peer: Result | None) -> str:
    """A paragraph that reads the figures of this run (generated, so it matches them)."""
    s0, s1 = shoal.checkpoints[0], shoal.checkpoints[-1]
    http = {op: med(s1, op) / med(s0, op) for op in READS}
    inner = {op: med(s1, op, True) / med(s0, op, True) for op in READS if s1.inproc}
    worst_http = max(http, key=lambda op: http[op])
    parts = []
    flat_http = http[worst_http] < 1.5
    parts.append(
        f"From {s0.n:,} to {s1.n:,} versions of one model, Shoal's reads over HTTP moved by at most "
        f"{http[worst_http]:.2f}× ({worst_http})"
        + (", i.e. they stay flat." if flat_http else f": {worst_http} is **not** flat.")
    )
    if inner:
        worst = max(inner, key=lambda op: inner[op])
        parts.append(
            f"In process, without HTTP, the same reads take {ms(min(med(s1, op, True) for op in inner))}–"
            f"{ms(max(med(s1, op, True) for op in inner))} ms at {s1.n:,} and move by at most "
            f"{inner[worst]:.2f}× ({worst})"
            + (": the store does not slow down as it grows." if inner[worst] < 1.5 else " — not flat.")
        )
    floor = med(s1, FLOOR)
    inner_get = med(s1, GET, True)
    if floor > 0.02 and (math.isnan(inner_get) or inner_get < floor / 4):
        parts.append(
            f"But every Shoal request, even `GET /api/v1/health`, costs about {ms(floor)} ms, while the "
            f"work behind it takes about {ms(inner_get)} ms: the request path, not the store, sets "
            "Shoal's latency. A floor near 40 ms on a keep-alive connection is the signature of Nagle's "
            "algorithm meeting delayed ACKs — a server socket without TCP_NODELAY."
        )
    if peer is not None:
        p1 = peer.checkpoints[-1]
        if p1.samples:
            vs = {op: med(s1, op) / med(p1, op) for op in (*READS, CREATE)}
            slower = [op for op, r in vs.items() if r > 1.1]
            faster = [op for op, r in vs.items() if r < 0.9]
            summary = ", ".join(f"{op} {r:.2f}×" for op, r in vs.items())
            parts.append(
                f"Against MLflow's registry (Shoal @{s1.n:,} / MLflow @{p1.n:,} versions, medians): {summary}."
            )
            if slower and not faster:
                parts.append("Shoal is slower than the peer on every operation measured.")
            elif faster and not slower:
                parts.append("Shoal is faster than the peer on every operation measured.")
        p0 = peer.checkpoints[0]
        growth = {op: med(p1, op) / med(p0, op) for op in (*READS, CREATE)}
        steep = [op for op, r in growth.items() if r > 1.5]
        if steep:
            parts.append(
                f"MLflow does not stay flat from {p0.n:,} to {p1.n:,} versions on "
                + ", ".join(f"{op} ({growth[op]:.1f}×, {ms(med(p1, op))} ms)" for op in steep)
                + "."
            )
        if LATEST in steep:
            parts.append(
                "Its `get-latest-versions` builds the registered model entity, which walks every version "
                "of the name (`SqlAlchemyStore.get_latest_versions`)."
            )
        if LAST in steep:
            parts.append("Its search page token is an offset, so deep pages cost more.")
    return " ".join(parts)


def report(shoal: Result, peer: Result | None, peer_skip: str, args: argparse.Namespace, total_s: float) -> str:
    cmd = "`.venv/bin/python benchmarks/assets.py" + (f" --count {args.count}" if args.count != 10000 else "")
    cmd += "`"
    s1 = shoal.checkpoints[-1]
    out = [
        "## Versioned assets: many versions of one model (`benchmarks/assets.py`)",
        "",
        f"Run {today()} on {machine()} (load average at the end: {load_average()}); "
        f"{cmd}, {args.samples} interleaved samples per operation, total {total_s / 60:.1f} min.",
        "Shoal: `python -m shoal.server.main`, SQLite. "
        + (
            f"Peer: MLflow {peer.version} `mlflow server --workers 1`, SQLite model registry "
            "(job runner off, https sources allowed)."
            if peer is not None
            else f"Peer: not measured ({peer_skip})."
        ),
        "Each system gets one keep-alive `httpx` connection; client and server share the cores.",
        "",
        f"### One model, {s1.n:,} versions: milliseconds, median (p95)",
        "",
        "MLflow's equivalents: `model-versions/get`; `registered-models/get-latest-versions`; "
        "`model-versions/search` by name, `version_number DESC`, 100 a page (its page token is an "
        "offset); `/health`. Last page: the request for the final page after walking every token.",
        "",
        versions_table(shoal, peer),
        "",
        f"Creating versions in bulk: Shoal {throughput(shoal, args.threads)}"
        + (f"; MLflow {throughput(peer, args.threads)}" if peer is not None else "")
        + f". Server start until ready: Shoal {shoal.start_s:.1f} s"
        + (f", MLflow {peer.start_s:.1f} s" if peer is not None else "")
        + ".",
    ]
    if peer is not None and peer.note:
        out += ["", peer.note]
    if s1.inproc:
        out += [
            "",
            "### Shoal's service layer in process (same database, no HTTP): milliseconds, median (p95)",
            "",
            inproc_table(shoal.checkpoints, READS, "versions"),
        ]
    if shoal.names:
        out += [
            "",
            "### Many names, one version each (Shoal only): milliseconds, median (p95)",
            "",
            "Listing names returns each name's latest version, 100 a page, ordered by name; the "
            "many-versions model above is one more name in the list.",
            "",
            names_table(shoal.names),
        ]
    out += ["", "### Reading", "", reading(shoal, peer)]
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="versions (and names) to grow to")
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure MLflow too (default: if an mlflow executable is found)",
    )
    parser.add_argument("--mlflow", help="the mlflow executable (default: $SHOAL_BENCH_MLFLOW, venv, PATH)")
    parser.add_argument(
        "--peer-budget",
        type=float,
        default=240,
        help="seconds the peer may spend creating versions before it is measured at fewer",
    )
    parser.add_argument(
        "--names",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure --count names with one version each (Shoal)",
    )
    parser.add_argument("--samples", type=int, default=200, help="timed samples per operation")
    parser.add_argument("--threads", type=int, default=8, help="connections used to create in bulk")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)
    if args.count < 100 or args.count % 100:
        parser.error("--count must be a multiple of 100, at least 100")

    exe = find_mlflow(args.mlflow) if args.peer is not False else None
    peer_skip = ""
    if args.peer is False:
        peer_skip = "--no-peer"
    elif exe is None:
        peer_skip = "no mlflow executable found; see benchmarks/README.md"
        if args.peer:
            print(f"error: --peer given but {peer_skip}", file=sys.stderr)
            return 2
        print(f"peer skipped: {peer_skip}", flush=True)

    started = time.perf_counter()
    shoal = Result("Shoal")
    peer: Result | None = None
    with scratch("shoal-bench-assets-") as tmp:
        print(f"Shoal (count {args.count:,})", flush=True)
        with shoal_server(tmp) as server:
            shoal.start_s = server.start_s
            system = Shoal(server)
            inproc = InProcess(server.home)
            try:
                run_versions(system, shoal, args, inproc, None)
                if args.names:
                    run_names(system, shoal, args, inproc)
            finally:
                inproc.close()
        if exe is not None:
            peer = Result("MLflow", version=mlflow_version(exe))
            print(f"MLflow {peer.version} ({exe})", flush=True)
            try:
                with mlflow_server(exe, tmp) as server:
                    peer.start_s = server.start_s
                    run_versions(Mlflow(server), peer, args, None, args.peer_budget)
            except Exception as exc:  # keep Shoal's figures; say why the peer is missing
                print(f"peer failed: {exc!r}", file=sys.stderr, flush=True)
                peer, peer_skip = None, f"the MLflow run failed: {type(exc).__name__}: {exc}"
    total = time.perf_counter() - started

    text = report(shoal, peer, peer_skip, args, total)
    print()
    print(text)
    write_section("assets", text, args.out)
    print(f"\nwrote the assets section of {args.out} ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
