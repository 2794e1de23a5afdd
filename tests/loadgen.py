"""Concurrent load on a tracking server, and the count of what it stored against what it acknowledged.

Shared by ``tests/e2e/test_load.py`` (which asserts zero errors and zero lost writes) and
``benchmarks/load.py`` (which reports latencies against MLflow's server under the same load).

``clients`` threads, each with its own keep-alive ``httpx.Client``, repeat one cycle until the
deadline: create a run, log ``batches`` metric batches into it (``points`` points of one metric,
steps that never repeat within the run), and register the next version of a model (and, on Shoal,
of a data asset) under one of a few names shared by all clients, so concurrent version numbering
is exercised. Every write the server acknowledges (2xx) is recorded with what it returned; every
failure (transport error, timeout or non-2xx) is an error, kept with its text. ``verify`` then
reads everything back: runs in the experiment, each run's metric history, each name's versions.
A write acknowledged but not stored, or a version number handed out twice, is a lost write.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

CREATE_RUN, LOG_BATCH, MODEL_VERSION, DATA_VERSION = "create run", "log batch", "model version", "data version"
OPERATIONS = (CREATE_RUN, LOG_BATCH, MODEL_VERSION, DATA_VERSION)
SOURCE = "https://example.com/load/model.pkl"
DATA_SOURCE = "https://example.com/load/data.csv"


@dataclass
class Target:
    """One server: its MLflow REST base (``…/api/2.0/mlflow``), headers, and, for Shoal, the
    workspace REST base for models and data (``…/api/v1/workspaces/<ws>``); else models go through
    MLflow's registry."""

    label: str
    mlflow: str
    headers: dict[str, str] = field(default_factory=dict)
    workspace: str | None = None

    @property
    def shoal(self) -> bool:
        return self.workspace is not None


@dataclass
class Load:
    """What one load run sent, what was acknowledged, and how long each operation took."""

    target: Target
    clients: int
    seconds: float
    experiment_id: str = ""
    names: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)
    points: Counter[str] = field(default_factory=Counter)  # run id -> metric points acknowledged
    versions: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    elapsed: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acknowledged(self) -> int:
        return len(self.runs) + sum(self.points.values()) + sum(len(v) for v in self.versions.values())

    def record(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latencies[op].append(seconds)

    def error(self, op: str, what: str) -> None:
        with self.lock:
            self.errors.append(f"{op}: {what[:300]}")


@dataclass
class Stored:
    """What ``verify`` read back, and what it found missing or doubled."""

    runs: int = 0
    points: int = 0
    versions: int = 0
    lost: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.runs + self.points + self.versions


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _ok(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {resp.text[:200]}")
    return resp.json() if resp.content else {}


def setup(target: Target, *, names: int = 5) -> tuple[str, list[str]]:
    """A fresh experiment, and the model names the clients share (registered first on MLflow,
    where a version needs its registered model; Shoal creates the name with its first version)."""
    tag = uuid.uuid4().hex[:8]
    with httpx.Client(headers=target.headers, timeout=60) as c:
        exp = _ok(c.post(f"{target.mlflow}/experiments/create", json={"name": f"load-{tag}"}))["experiment_id"]
        shared = [f"load-{tag}-{i}" for i in range(names)]
        if not target.shoal:
            for name in shared:
                _ok(c.post(f"{target.mlflow}/registered-models/create", json={"name": name}))
    return str(exp), shared


def run_load(
    target: Target, *, clients: int = 50, seconds: float = 60, batches: int = 3, points: int = 20, names: int = 5
) -> Load:
    """``clients`` threads hammering ``target`` for ``seconds``; returns what was acknowledged."""
    load = Load(target, clients, seconds)
    load.experiment_id, load.names = setup(target, names=names)
    # The window opens when every client has its connection (on a loaded machine that can take
    # seconds), and every client goes through at least one whole cycle of writes.
    window: dict[str, float] = {}
    barrier = threading.Barrier(clients, action=lambda: window.update(start=time.perf_counter()))
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(_client, load, i, window, seconds, batches, points, barrier) for i in range(clients)]
        for future in futures:
            future.result()
    load.elapsed = time.perf_counter() - window["start"]
    return load


def _post(load: Load, op: str, c: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """POST and time it; a failure of any kind is counted as an error of ``op``."""
    t0 = time.perf_counter()
    try:
        reply = _ok(c.post(url, json=body))
    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
        load.error(op, f"{type(exc).__name__}: {exc}")
        return None
    load.record(op, time.perf_counter() - t0)
    return reply


def _client(
    load: Load,
    index: int,
    window: dict[str, float],
    seconds: float,
    batches: int,
    points: int,
    barrier: threading.Barrier,
) -> None:
    t = load.target
    with httpx.Client(headers=t.headers, timeout=120) as c:
        barrier.wait()
        deadline = window["start"] + seconds
        cycle = 0
        while cycle == 0 or time.perf_counter() < deadline:
            now = int(time.time() * 1000)
            run = {"experiment_id": load.experiment_id, "start_time": now, "run_name": f"c{index}-{cycle}"}
            body = _post(load, CREATE_RUN, c, f"{t.mlflow}/runs/create", run)
            if body is not None:
                run_id = body["run"]["info"]["run_id"]
                with load.lock:
                    load.runs.add(run_id)
                for b in range(batches):
                    metrics = [
                        {"key": "loss", "value": 1.0 / (1 + step), "timestamp": now + step, "step": step}
                        for step in range(b * points, (b + 1) * points)
                    ]
                    batch = {"run_id": run_id, "metrics": metrics}
                    if _post(load, LOG_BATCH, c, f"{t.mlflow}/runs/log-batch", batch) is not None:
                        with load.lock:
                            load.points[run_id] += len(metrics)
            name = load.names[(index + cycle) % len(load.names)]
            _version(load, c, MODEL_VERSION, name)
            if t.shoal:
                _version(load, c, DATA_VERSION, name)
            cycle += 1


def _version(load: Load, c: httpx.Client, op: str, name: str) -> None:
    t = load.target
    if not t.shoal:
        body = _post(load, op, c, f"{t.mlflow}/model-versions/create", {"name": name, "source": SOURCE})
        version = None if body is None else str(body["model_version"]["version"])
    else:
        plural, spec = (
            ("models", {"name": name, "type": "custom_model", "path": SOURCE})
            if op == MODEL_VERSION
            else ("data", {"name": name, "type": "uri_file", "path": DATA_SOURCE})
        )
        body = _post(load, op, c, f"{t.workspace}/{plural}/{name}/versions", spec)
        version = None if body is None else str(body["version"])
    if version is not None:
        with load.lock:
            load.versions[(op, name)].append(version)


# -- reading it back ---------------------------------------------------------------------------


def verify(load: Load, *, threads: int = 8) -> Stored:
    """Read back every acknowledged write; name each one missing, and each version given twice."""
    t = load.target
    stored = Stored()
    with httpx.Client(headers=t.headers, timeout=120) as c:
        found: set[str] = set()
        token = None
        while True:
            body = {"experiment_ids": [load.experiment_id], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = _ok(c.post(f"{t.mlflow}/runs/search", json=body))
            found.update(r["info"]["run_id"] for r in page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                break
        stored.runs = len(found & load.runs)
        stored.lost += [f"run {r} acknowledged, not found" for r in sorted(load.runs - found)[:20]]
        stored.lost += [f"run {r} stored, never acknowledged" for r in sorted(found - load.runs)[:20]]

        for (op, name), acked in sorted(load.versions.items()):
            have = _versions(t, c, op, name)
            doubled = [v for v, n in Counter(acked).items() if n > 1]
            stored.lost += [f"{op} {name}:{v} acknowledged to two clients" for v in doubled]
            missing = set(acked) - have
            stored.lost += [f"{op} {name}:{v} acknowledged, not found" for v in sorted(missing)]
            stored.versions += len(set(acked) & have)

    def history(run_id: str) -> tuple[str, int]:
        with httpx.Client(headers=t.headers, timeout=120) as hc:
            page = _ok(hc.get(f"{t.mlflow}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}))
            return run_id, len({m["step"] for m in page.get("metrics", [])})

    with ThreadPoolExecutor(threads) as pool:
        for run_id, steps in pool.map(history, sorted(load.points)):
            stored.points += min(steps, load.points[run_id])
            if steps != load.points[run_id]:
                stored.lost.append(f"run {run_id}: {load.points[run_id]} points acknowledged, {steps} stored")
    return stored


def _versions(t: Target, c: httpx.Client, op: str, name: str) -> set[str]:
    out: set[str] = set()
    token = None
    while True:
        if t.shoal:
            plural = "models" if op == MODEL_VERSION else "data"
            params: dict[str, Any] = {"name": name, "max_results": 100}
            if token:
                params["page_token"] = token
            page = _ok(c.get(f"{t.workspace}/{plural}", params=params))
            out.update(str(v["version"]) for v in page.get("value", []))
        else:
            params = {"filter": f"name='{name}'", "max_results": 1000}
            if token:
                params["page_token"] = token
            page = _ok(c.get(f"{t.mlflow}/model-versions/search", params=params))
            out.update(str(v["version"]) for v in page.get("model_versions", []))
        token = page.get("next_page_token")
        if not token:
            return out
