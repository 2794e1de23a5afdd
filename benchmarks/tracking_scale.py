"""The metric store at scale: a workspace with 100,000 runs, one of them with 1,000,000 points of
one metric. Do history pages, search, ``job show`` and the latest metrics stay responsive?

    .venv/bin/python benchmarks/tracking_scale.py [--runs 100000] [--points 1000000]
                                                  [--postgres postgresql://user@host/db] [--samples 30]

The workspace is filled through the store layer before the server starts (the server is the only
process that opens a store while it runs): the big run and the experiment are made by the tracking
service; its 1,000,000 points go through ``store.tracking.insert_metrics`` (the statements
``runs/log-batch`` uses) in batches of 10,000; the other runs are copies of the big run's job row
inserted in bulk, each with a param (``group``), a tag (``mlflow.runName``) and two metrics (``acc``,
``loss``: a point and its latest value); on PostgreSQL, ``ANALYZE`` then gathers the planner's
statistics, as autovacuum does within a minute of a bulk load. Then a real Shoal server starts on that store, and every
read goes over HTTP on one keep-alive connection, as the MLflow REST API, Shoal's REST API and
Shoal's SDK send it.

SQLite always; with ``--postgres URL`` (a server where the URL's user may create databases) the
same again on a fresh PostgreSQL database, dropped afterwards. The run prints a table and rewrites
only its own section of ``docs/benchmarks.md`` (``<!-- tracking_scale:begin -->`` … ``end``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import DOCS, Server, load_average, machine, median, ms, p95, scratch, shoal_server, today, write_section

RESPONSIVE_MS = 200.0
FILTER = "params.group = 'g3' and metrics.acc > 0.5"
ORDER = ["metrics.acc DESC"]
PAGE = 1000  # history page size for the page reads (the MLflow client's usual)
WALK_PAGE = 25_000  # what `shoal job metrics` asks per request


@dataclass
class Filled:
    big_run: str
    experiment_id: str
    runs: int
    points: int
    fill_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    label: str  # "SQLite" / "PostgreSQL"
    filled: Filled
    start_s: float
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.samples.setdefault(key, []).append(seconds)


# -- filling the store -----------------------------------------------------------------------------


def fill(home: Path, database_url: str | None, runs: int, points: int, seed: int) -> Filled:
    """The workspace, written through the store layer while no server runs."""
    from sqlalchemy import insert, select, text

    from shoal.config import ShoalSettings
    from shoal.services import workspaces
    from shoal.services.context import ServiceContext
    from shoal.services.tracking import experiments as tracking_experiments
    from shoal.services.tracking import runs as tracking_runs
    from shoal.store import tracking as rows
    from shoal.store.tables import JobRow, LatestMetricRow, MetricRow, ParamRow, RunTagRow

    rng = random.Random(seed)
    home.mkdir(parents=True, exist_ok=True)
    settings = ShoalSettings(home=home, database_url=database_url)
    ctx = ServiceContext.from_settings(settings)
    timings: dict[str, float] = {}
    try:
        ctx.db.migrate()
        workspaces.ensure_default(ctx)
        exp_id = tracking_experiments.create_experiment(ctx, "default", {"name": "scale"})["experiment_id"]
        big = tracking_runs.create_run(ctx, "default", {"experiment_id": exp_id, "run_name": "big"})["run"]["info"]
        big_run = big["run_id"]

        # 1. The big run: `points` points of "loss" through the log-batch write path.
        t0 = time.perf_counter()
        now = int(time.time() * 1000)
        with ctx.db.read() as session:
            big_id = session.scalar(select(JobRow.id).where(JobRow.name == big_run))
        for start in range(0, points, 10_000):
            batch = [
                ("loss", 1.0 / (1 + step) + rng.random() * 1e-3, now + step, step, False)
                for step in range(start, min(points, start + 10_000))
            ]
            with ctx.db.write() as session:
                rows.insert_metrics(session, big_id, batch)
        timings["points"] = time.perf_counter() - t0

        # 2. The other runs: copies of the big run's job row, in bulk, with their data.
        t0 = time.perf_counter()
        with ctx.db.read() as session:
            template = session.scalar(select(JobRow).where(JobRow.id == big_id))
            assert template is not None
            base = {c.key: getattr(template, c.key) for c in JobRow.__table__.columns if c.key != "id"}
        started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=runs)
        for first in range(1, runs, 10_000):
            jobs = []
            for i in range(first, min(runs, first + 10_000)):
                name = uuid.uuid4().hex
                when = started + dt.timedelta(seconds=i)
                jobs.append(
                    {
                        **base,
                        "name": name,
                        "run_name": f"r{i}",
                        "spec": {**base["spec"], "display_name": f"r{i}"},
                        "resolved": {
                            "artifacts": {**base["resolved"]["artifacts"], "path": f"ExperimentRun/dcid.{name}"}
                        },
                        "status_times": {k: when.isoformat() for k in base["status_times"]},
                        "start_time": when,
                        "created_at": when,
                        "updated_at": when,
                    }
                )
            with ctx.db.write() as session:
                session.execute(insert(JobRow.__table__), jobs)
                names = [j["name"] for j in jobs]
                ids = dict(session.execute(select(JobRow.name, JobRow.id).where(JobRow.name.in_(names))).all())
                stamp = int(time.time() * 1000)
                tags, params, points_, latest = [], [], [], []
                for j in jobs:
                    job_id = ids[j["name"]]
                    i = int(j["run_name"][1:])
                    tags.append({"job_id": job_id, "key": "mlflow.runName", "value": j["run_name"]})
                    params.append({"job_id": job_id, "key": "group", "value": f"g{i % 10}"})
                    for key, value in (("acc", rng.random()), ("loss", rng.random() * 3)):
                        row = {
                            "job_id": job_id,
                            "key": key,
                            "value": value,
                            "timestamp": stamp,
                            "step": 0,
                            "is_nan": False,
                        }
                        points_.append(row)
                        latest.append(row)
                session.execute(insert(RunTagRow.__table__), tags)
                session.execute(insert(ParamRow.__table__), params)
                session.execute(insert(MetricRow.__table__), points_)
                session.execute(insert(LatestMetricRow.__table__), latest)
        timings["runs"] = time.perf_counter() - t0
        if not ctx.db.is_sqlite:
            # The planner's statistics, as autovacuum gathers them within a minute of a bulk load:
            # measured right after one, PostgreSQL would plan with none.
            with ctx.db.write_engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
    finally:
        ctx.close()
    return Filled(big_run, exp_id, runs, points, timings)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of ``admin_url``, dropped afterwards."""
    from sqlalchemy import create_engine, text

    from shoal.store.db import normalize_url

    name = f"shoal_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# -- measuring -------------------------------------------------------------------------------------


def timed(result: Result, key: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    result.add(key, time.perf_counter() - t0)
    return out


def measure(server: Server, result: Result, samples: int, walks: int) -> None:
    from shoal import MLClient

    filled = result.filled
    base = f"{server.url}/api/v1/workspaces/default"
    http = httpx.Client(headers=server.headers, timeout=600)
    api = f"{base}/mlflow/api/2.0/mlflow"
    big = filled.big_run

    def ok(reply: httpx.Response) -> dict[str, Any]:
        reply.raise_for_status()
        return reply.json()  # type: ignore[no-any-return]

    def history(token: str | None = None, size: int = PAGE) -> dict[str, Any]:
        params: dict[str, Any] = {"run_id": big, "metric_key": "loss", "max_results": size}
        if token:
            params["page_token"] = token
        return ok(http.get(f"{api}/metrics/get-history", params=params))

    def search(token: str | None = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"experiment_ids": [filled.experiment_id], "max_results": 100, **extra}
        if token:
            body["page_token"] = token
        return ok(http.post(f"{api}/runs/search", json=body))

    # Page tokens: walk every history page once (that walk is itself a measurement) and the first
    # ten pages of the search.
    print(f"  {result.label}: walking {filled.points:,} points in pages of {PAGE:,}", flush=True)
    tokens: list[str | None] = [None]
    seen = 0
    t_walk = time.perf_counter()
    while True:
        page = timed(result, "history_walk_page", lambda t=tokens[-1]: history(t))
        seen += len(page["metrics"])
        token = page.get("next_page_token")
        if not token:
            break
        tokens.append(token)
    result.add("history_walk_1000", time.perf_counter() - t_walk)
    if seen != filled.points:
        raise RuntimeError(f"{result.label}: the history walk saw {seen:,} points, not {filled.points:,}")
    last, middle = tokens[-1], tokens[len(tokens) // 2]
    search_tokens: list[str | None] = [None]
    for _ in range(9):
        token = search(search_tokens[-1], filter=FILTER, order_by=ORDER).get("next_page_token")
        if not token:
            break
        search_tokens.append(token)
    result.notes["search_depth"] = str(len(search_tokens))
    run_name = f"r{filled.runs * 3 // 4}"

    client = MLClient(base_url=server.url, token=server.headers["Authorization"].split()[1], workspace_name="default")
    reads: list[tuple[str, Callable[[], Any]]] = [
        ("history_first", lambda: history()),
        ("history_middle", lambda: history(middle)),
        ("history_last", lambda: history(last)),
        ("search_first", lambda: search(filter=FILTER, order_by=ORDER)),
        ("search_page10", lambda: search(search_tokens[-1], filter=FILTER, order_by=ORDER)),
        ("search_newest", lambda: search()),
        ("search_name", lambda: search(filter=f"attributes.run_name = '{run_name}'")),
        ("job_show_rest", lambda: ok(http.get(f"{base}/jobs/{big}"))),
        ("job_show_sdk", lambda: client.jobs.get(big)),
        ("latest_metrics", lambda: ok(http.get(f"{api}/runs/get", params={"run_id": big}))),
        ("job_list", lambda: ok(http.get(f"{base}/jobs", params={"max_results": 100}))),
    ]
    step = [filled.points]

    def log_batch() -> None:
        now = int(time.time() * 1000)
        metrics = [
            {"key": "loss", "value": random.random(), "timestamp": now, "step": step[0] + i} for i in range(1000)
        ]
        step[0] += 1000
        ok(http.post(f"{api}/runs/log-batch", json={"run_id": big, "metrics": metrics}))

    reads.append(("log_batch_big", log_batch))
    for fn in (f for _, f in reads):  # warm-up
        fn()
    print(f"  {result.label}: {samples} rounds of {len(reads)} reads", flush=True)
    for r in range(samples):
        for key, fn in reads if r % 2 == 0 else list(reversed(reads)):
            timed(result, key, fn)
    found = search(filter=FILTER, order_by=ORDER)["runs"]
    if not found or found[0]["data"]["params"] != [{"key": "group", "value": "g3"}]:
        raise RuntimeError(f"{result.label}: the search found the wrong runs")
    print(f"  {result.label}: {walks} walks of the whole history with the SDK (jobs.get_metrics)", flush=True)
    for _ in range(walks):
        got = timed(result, "history_walk_sdk", lambda: client.jobs.get_metrics(big, "loss"))
        if len(got) != step[0]:  # the points filled, and those log_batch added
            raise RuntimeError(f"{result.label}: jobs.get_metrics returned {len(got):,} points")
    http.close()


# -- report ---------------------------------------------------------------------------------------

ROWS = [
    ("history_first", f"get-history, first page ({PAGE:,} points)"),
    ("history_middle", f"get-history, a middle page ({PAGE:,} points, by its page token)"),
    ("history_last", f"get-history, the last page ({PAGE:,} points, by its page token)"),
    ("search_first", f"search_runs `{FILTER}`, `order_by={ORDER}`, first 100"),
    ("search_page10", "… the same, a deeper page (page {depth}, offset {offset})"),
    ("search_newest", "search_runs, no filter, newest first (MLflow's default order), first 100"),
    ("search_name", "search_runs `attributes.run_name = '…'` (one run of {runs})"),
    ("job_show_rest", "`shoal job show` on the big run (REST `GET …/jobs/<name>`: params, latest metrics)"),
    ("job_show_sdk", "… the same through the SDK (`ml_client.jobs.get`)"),
    ("latest_metrics", "latest metrics of the big run (MLflow `runs/get`)"),
    ("job_list", "`shoal job list`, first page (100 newest of {runs} jobs)"),
    ("log_batch_big", "log-batch of 1,000 more points into the {points}-point metric"),
]


def report(results: list[Result], args: argparse.Namespace, total: float) -> str:
    head = "| operation | " + " | ".join(f"{r.label}: median (p95) | ≤ {RESPONSIVE_MS:g} ms" for r in results) + " |"
    table = [head, "|---|" + "---:|---|" * len(results)]
    slow: list[str] = []
    depth = int(results[0].notes.get("search_depth", "10")) if results else 10
    for key, label in ROWS:
        label = label.format(
            depth=depth, offset=f"{(depth - 1) * 100:,}", runs=f"{args.runs:,}", points=f"{args.points:,}"
        )
        cells = []
        for r in results:
            values = r.samples.get(key, [])
            med, high = median(values), p95(values)
            good = not math.isnan(med) and med * 1000 <= RESPONSIVE_MS
            cells.append(f"{ms(med)} ms ({ms(high)}) | {'yes' if good else '**no**'}")
            if not good:
                slow.append(f"{label} on {r.label} ({ms(med)} ms)")
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    walk_rows = []
    for r in results:
        walk = median(r.samples.get("history_walk_sdk", []))
        walk_pages = median(r.samples.get("history_walk_1000", []))
        pages = r.samples.get("history_walk_page", [])
        walk_rows.append(
            f"- {r.label}: all {r.filled.points:,} points through `ml_client.jobs.get_metrics` "
            f"(what `shoal job metrics` does: pages of {WALK_PAGE:,}) in {walk:.1f} s "
            f"({r.filled.points / walk:,.0f} points/s); in pages of "
            f"{PAGE:,} in {walk_pages:.1f} s, {len(pages):,} pages, {ms(median(pages))} ms a page at the median, "
            f"{ms(max(pages))} ms the slowest (first page {ms(pages[0])} ms, last {ms(pages[-1])} ms). Filled in "
            f"{r.filled.fill_s['points']:.1f} s (points) and {r.filled.fill_s['runs']:.1f} s (runs); server ready in "
            f"{r.start_s:.1f} s."
        )
    cmd = "`.venv/bin/python benchmarks/tracking_scale.py"
    if args.runs != 100_000:
        cmd += f" --runs {args.runs}"
    if args.points != 1_000_000:
        cmd += f" --points {args.points}"
    if args.postgres:
        cmd += " --postgres …"
    cmd += "`"
    scale = ""
    if args.runs != 100_000 or args.points != 1_000_000:
        scale = (
            f" **Scaled down** by flags from the issue's 100,000 runs / 1,000,000 points to {args.runs:,} runs and "
            f"{args.points:,} points."
        )
    deeper = "; ".join(
        f"{r.label}: page {depth} {ms(median(r.samples.get('search_page10', [])))} ms, the first "
        f"{ms(median(r.samples.get('search_first', [])))} ms"
        for r in results
    )
    verdict = (
        f"Every operation answered within {RESPONSIVE_MS:g} ms at the median."
        if not slow
        else "Slower than " + f"{RESPONSIVE_MS:g} ms at the median: " + "; ".join(slow) + "."
    )
    out = [
        "## The metric store at scale (`benchmarks/tracking_scale.py`)",
        "",
        f"Run {today()} on {machine()} (load average at the end: {load_average()}); {cmd}, total "
        f"{total / 60:.1f} min.{scale}",
        f"A workspace with {args.runs:,} runs in one experiment, one of which (the *big run*) has "
        f"{args.points:,} points of one metric (`loss`, one point a step). Filled through the store layer "
        "before the server starts: the big "
        "run's points through `store.tracking.insert_metrics` (the statements `runs/log-batch` runs) in batches of "
        "10,000; the other runs as bulk copies of the big run's job row, each with a param `group` (10 values), a tag "
        "and two metrics (`acc`, `loss`); on PostgreSQL, `ANALYZE` then gathers the planner's statistics (as "
        "autovacuum does within a minute of a bulk load). Then a real Shoal server (`python -m shoal.server.main`) "
        "on that store; "
        f"every read over HTTP on one keep-alive connection. Milliseconds, median (p95) of {args.samples} "
        "interleaved rounds; *responsive*: a median within "
        f"{RESPONSIVE_MS:g} ms.",
        "",
        *table,
        "",
        *walk_rows,
        "",
        "### Reading",
        "",
        verdict
        + " A history page is one range of the metric table's primary key (job, key, step, timestamp, value, is_nan), "
        "and the page token is the last point's key, so the last page costs what the first does. `job show` "
        "and `runs/get` read the latest value of each metric from `latest_metric`, kept by every write, never the "
        "points. Search sorts run ids only and loads whole rows for the page; MLflow's default order (newest first) "
        "and `job list` are read in index order (`ix_job_run_order`, `ix_job_list`); a search ordered by a metric "
        "it also filters on walks that metric's values (`ix_latest_metric_value`) until the page is full. MLflow's "
        f"search page token is an offset, so a deeper page walks further ({deeper}). "
        "A search by run name compares every run of the experiment (no index serves `coalesce(run_name, name)`).",
    ]
    return "\n".join(out)


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the workspace (the big run included)")
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the big run's metric")
    parser.add_argument("--samples", type=int, default=30, help="interleaved rounds of the reads")
    parser.add_argument("--walks", type=int, default=3, help="whole-history walks through the SDK")
    parser.add_argument("--postgres", help="also on a fresh database of this PostgreSQL server (admin URL)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    started = time.perf_counter()
    results: list[Result] = []
    databases: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgres:
        databases.append(("PostgreSQL", args.postgres))
    for label, admin_url in databases:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(scratch("shoal-bench-scale-"))
            url = stack.enter_context(postgres_database(admin_url)) if admin_url else None
            print(f"{label}: filling {args.runs:,} runs and {args.points:,} points…", flush=True)
            filled = fill(tmp / "shoal-home", url, args.runs, args.points, args.seed)
            print(f"  filled in {sum(filled.fill_s.values()):.0f} s", flush=True)
            server = stack.enter_context(shoal_server(tmp, database_url=url))
            result = Result(label, filled, server.start_s)
            measure(server, result, args.samples, args.walks)
            results.append(result)
    total = time.perf_counter() - started
    text = report(results, args, total)
    print()
    print(text)
    write_section("tracking_scale", text, args.out)
    print(f"\nwrote the tracking_scale section of {args.out} ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
