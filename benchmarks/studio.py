"""The studio at scale: a workspace of 100,000 jobs, one with a 1,000,000-point metric. How long
until the jobs page's data and a chart's data have loaded, beside MLflow's UI and API over 10,000
runs and a 100,000-point metric (the scale at which MLflow's UI is usually judged).

    .venv/bin/python benchmarks/studio.py [--jobs 100000] [--points 1000000] [--peer-runs 10000]
        [--peer-points 100000] [--samples 15] [--mlflow /tmp/peer-mlflow/bin/mlflow] [--no-browser]

Shoal's workspace is filled through the store while no server runs (``tracking_scale.fill``: the
big run's points through ``store.tracking.insert_metrics``, the write path that keeps the metric's
rollup; the other jobs copied in bulk, each with a param, a tag and two metrics). MLflow's is filled
through its own ``SqlAlchemyStore`` (the big run's points with ``log_batch``), the other runs copied
in bulk with SQL in MLflow's own schema; then ``mlflow server --workers 1`` serves it. Both run on
127.0.0.1 on SQLite, one after the other, and each figure is the median (and p95) of ``--samples``:

- API: the calls each page makes for its data, over HTTP on a keep-alive connection. Shoal: the
  studio's jobs search (50 rows, with two metric and one param column; then filtered by a metric and
  a param and ordered by the metric) and the chart's series (1,000 points of the 1,000,000; then a
  zoom into 200,000 steps). MLflow: ``runs/search`` as its UI sends it (100 runs, newest first; then
  the same filter and order) and ``get-history-bulk-interval`` (its UI's sampled chart call).
- Browser (Debian's Chromium driven by Playwright, when both are there and the studio's pages are
  installed): from navigation until the jobs table shows its rows, and until the job's chart says
  how many points it drew; MLflow's UI the same way (runs table rows; the run's metric chart).

It prints a table and rewrites only its own section of docs/benchmarks.md (``<!-- studio:begin -->``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from _common import (
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
    write_section,
)
from tracking_scale import fill

CHROMIUM = os.environ.get("SHOAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
FILTER = "metrics.acc > 0.5 and params.group = 'g3'"

# Run by the peer's Python: MLflow's store fills its own database.
PEER_FILL = r"""
import json, random, sqlite3, sys, time, uuid
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

db, artifacts, runs, points = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
store = SqlAlchemyStore(f"sqlite:///{db}", artifacts)
exp = store.create_experiment("scale")
now = int(time.time() * 1000)
t0 = time.perf_counter()
big = store.create_run(exp, "bench", now - runs * 1000 - 1, [RunTag("mlflow.runName", "big")], "big").info.run_id
for start in range(0, points, 1000):
    steps = range(start, min(points, start + 1000))
    batch = [Metric("loss", 1.0 / (1 + s) + rng.random() * 1e-3, now + s, s) for s in steps]
    store.log_batch(big, batch, [], [])
store.update_run_info(big, RunStatus.FINISHED, now + points, "big")
points_s = time.perf_counter() - t0
t0 = time.perf_counter()
template = store.create_run(exp, "bench", now - runs * 1000, [], "r0").info.run_id
store.log_batch(template, [Metric("acc", 0.5, now, 0), Metric("loss", 1.0, now, 0)], [Param("group", "g0")], [])
store.update_run_info(template, RunStatus.FINISHED, now, "r0")
con = sqlite3.connect(db)
cur = con.execute("SELECT * FROM runs WHERE run_uuid = ?", (template,))
columns = [d[0] for d in cur.description]
row = dict(zip(columns, cur.fetchone()))
rows, params, metrics, latest, tags = [], [], [], [], []
for i in range(1, runs - 1):
    rid = uuid.uuid4().hex
    start = now - (runs - i) * 1000
    rows.append({**row, "run_uuid": rid, "name": f"r{i}", "start_time": start, "end_time": start + 500,
                 "artifact_uri": row["artifact_uri"].replace(template, rid)})
    params.append(("group", f"g{i % 10}", rid))
    tags.append(("mlflow.runName", f"r{i}", rid))
    for key, value in (("acc", rng.random()), ("loss", rng.random() * 3)):
        metrics.append((key, value, now, rid, 0, False))
        latest.append((key, value, now, 0, False, rid))
con.executemany(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [tuple(r[c] for c in columns) for r in rows])
con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
six = "VALUES (?, ?, ?, ?, ?, ?)"
con.executemany(f"INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) {six}", metrics)
con.executemany(f"INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) {six}", latest)
con.commit()
print(json.dumps({"experiment_id": exp, "big": big, "points_s": points_s, "runs_s": time.perf_counter() - t0}))
"""


def sample(fn: Callable[[], Any], n: int, warm: int = 2) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ok(response: httpx.Response) -> httpx.Response:
    response.raise_for_status()
    return response


# -- Shoal -------------------------------------------------------------------------------------------


def shoal_api(url: str, headers: dict[str, str], big: str, n: int) -> dict[str, list[float]]:
    ws = f"{url}/api/v1/workspaces/default/studio"
    cols = "metrics.acc,metrics.loss,params.group"
    with httpx.Client(headers=headers, timeout=120) as http:
        first = ok(http.get(f"{ws}/jobs", params={"columns": cols})).json()
        assert len(first["jobs"]) == 50, first["total"]
        series = ok(http.get(f"{ws}/jobs/{big}/series", params={"key": "loss", "points": 1000})).json()
        assert series["sampled"], series["total"]
        return {
            "jobs page": sample(lambda: ok(http.get(f"{ws}/jobs", params={"columns": cols})), n),
            "jobs, filtered, by metric": sample(
                lambda: ok(
                    http.get(f"{ws}/jobs", params={"columns": cols, "filter": FILTER, "order_by": "metrics.acc desc"})
                ),
                n,
            ),
            "chart": sample(lambda: ok(http.get(f"{ws}/jobs/{big}/series", params={"key": "loss", "points": 1000})), n),
            "chart, zoomed": sample(
                lambda: ok(
                    http.get(
                        f"{ws}/jobs/{big}/series",
                        params={"key": "loss", "points": 1000, "step_from": 400_000, "step_to": 599_999},
                    )
                ),
                n,
            ),
        }


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}"
    return None


def timed_navigation(page: Any, url: str, ready: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    ready()
    return time.perf_counter() - t0


def shoal_browser(browser: Any, url: str, token: str, big: str, n: int) -> dict[str, list[float]]:
    from shoal.studio import login_url

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(login_url(url, token))
    jobs = f"{url}/studio/workspaces/default/jobs"
    chart = f"{url}/studio/workspaces/default/jobs/{big}?tab=metrics"

    def rows_shown() -> None:
        page.wait_for_selector("table tbody tr", timeout=60_000)

    def chart_drawn() -> None:
        page.wait_for_function(
            "() => [...document.querySelectorAll('.chart-grid *')].some(e => /points/.test(e.textContent))",
            timeout=60_000,
        )

    out = {
        "jobs page": sample(lambda: timed_navigation(page, jobs, rows_shown), n, warm=1),
        "chart": sample(lambda: timed_navigation(page, chart, chart_drawn), n, warm=1),
    }
    context.close()
    return out


# -- MLflow ------------------------------------------------------------------------------------------


def fill_mlflow(exe: str, tmp: Path, runs: int, points: int) -> tuple[str, dict[str, Any]]:
    home = tmp / "mlflow-data"
    home.mkdir()
    db = home / "mlflow.db"
    python = str(Path(exe).parent / "python")
    # The schema first, as `mlflow server` makes it; then the runs.
    subprocess.run([exe, "db", "upgrade", f"sqlite:///{db}"], check=True, capture_output=True, timeout=600)
    out = subprocess.run(
        [python, "-c", PEER_FILL, str(db), str(home / "artifacts"), str(runs), str(points)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"filling MLflow's store failed:\n{out.stderr[-2000:]}")
    return f"sqlite:///{db}", json.loads(out.stdout.strip().splitlines()[-1])


def mlflow_api(url: str, exp: str, big: str, n: int) -> dict[str, list[float]]:
    api = f"{url}/ajax-api/2.0/mlflow"
    newest = {"experiment_ids": [exp], "max_results": 100, "order_by": ["attributes.start_time DESC"]}
    filtered = {**newest, "filter": FILTER, "order_by": ["metrics.acc DESC"]}
    interval = {"run_ids": big, "metric_key": "loss", "max_results": 320}
    with httpx.Client(timeout=300) as http:
        assert len(ok(http.post(f"{api}/runs/search", json=newest)).json()["runs"]) == 100
        return {
            "jobs page": sample(lambda: ok(http.post(f"{api}/runs/search", json=newest)), n),
            "jobs, filtered, by metric": sample(lambda: ok(http.post(f"{api}/runs/search", json=filtered)), n),
            "chart": sample(lambda: ok(http.get(f"{api}/metrics/get-history-bulk-interval", params=interval)), n),
        }


def mlflow_browser(browser: Any, url: str, exp: str, big: str, runs: int, n: int) -> dict[str, list[float]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    newest = f"r{runs - 2}"  # the newest copied run's name (PEER_FILL)

    def rows_shown(page: Any) -> None:
        page.wait_for_selector(f"text={newest}", timeout=120_000)

    def chart_drawn(page: Any) -> None:
        page.wait_for_selector(".js-plotly-plot .scatterlayer path, canvas", timeout=120_000)

    out = {}
    targets = (
        ("jobs page", f"{url}/#/experiments/{exp}", rows_shown),
        ("chart", f"{url}/#/experiments/{exp}/runs/{big}/model-metrics", chart_drawn),
    )
    for key, target, ready in targets:
        try:
            out[key] = sample(lambda t=target, r=ready: fresh_page(context, t, r), n, warm=1)
        except Exception as exc:  # noqa: BLE001 - the peer's UI may not draw what is waited for
            print(f"MLflow UI {key}: not measured ({type(exc).__name__}: {str(exc)[:160]})", file=sys.stderr)
    context.close()
    return out


def fresh_page(context: Any, url: str, ready: Callable[[Any], None]) -> float:
    """A new page each time: MLflow's UI is a single-page app that keeps what it loaded."""
    page = context.new_page()
    try:
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        ready(page)
        return time.perf_counter() - t0
    finally:
        page.close()


# -- report ------------------------------------------------------------------------------------------


def row(label: str, shoal: list[float] | None, peer: list[float] | None) -> str:
    def cell(s: list[float] | None) -> str:
        return f"{ms(median(s))} ({ms(p95(s))})" if s else "—"

    return f"| {label} | {cell(shoal)} | {cell(peer)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--peer-runs", type=int, default=10_000)
    parser.add_argument("--peer-points", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--mlflow", help="the peer's `mlflow` (a venv with mlflow from PyPI, UI included)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    browser_missing = "--no-browser given" if args.no_browser else browser_problem()
    exe = find_mlflow(args.mlflow or "/tmp/peer-mlflow/bin/mlflow")
    results: dict[str, dict[str, list[float]]] = {}
    notes: list[str] = []
    with scratch("shoal-bench-studio-") as tmp:
        t0 = time.perf_counter()
        filled = fill(tmp / "shoal-home", None, args.jobs, args.points, seed=11)
        notes.append(
            f"Shoal filled in {time.perf_counter() - t0:.0f} s ({filled.fill_s['points']:.0f} s for the points)"
        )
        with shoal_server(tmp) as server:
            results["shoal api"] = shoal_api(server.url, server.headers, filled.big_run, args.samples)
            if browser_missing is None:
                token = server.headers["Authorization"].split(" ", 1)[1]
                with chromium() as browser:
                    results["shoal browser"] = shoal_browser(browser, server.url, token, filled.big_run, args.samples)
        if exe is not None:
            t0 = time.perf_counter()
            backend, peer = fill_mlflow(exe, tmp, args.peer_runs, args.peer_points)
            notes.append(f"MLflow filled in {time.perf_counter() - t0:.0f} s")
            with mlflow_server(exe, tmp, backend_store_uri=backend) as server:
                results["mlflow api"] = mlflow_api(server.url, peer["experiment_id"], peer["big"], args.samples)
                if browser_missing is None:
                    with chromium() as browser:
                        results["mlflow browser"] = mlflow_browser(
                            browser, server.url, peer["experiment_id"], peer["big"], args.peer_runs, args.samples
                        )
    peer_name = f"MLflow {mlflow_version(exe)}" if exe else "MLflow (not installed)"
    lines = [
        "## Studio at scale",
        "",
        f"`benchmarks/studio.py` on {machine()}, {today()}, load {load_average()}. Shoal: {args.jobs:,} jobs, one "
        f"with a {args.points:,}-point metric; {peer_name}: {args.peer_runs:,} runs, one with a "
        f"{args.peer_points:,}-point metric. Both on SQLite, one server worker each, median (p95) of "
        f"{args.samples} samples. Target for Shoal: under 300 ms at the median.",
        "",
        f"| API: a page's data call | Shoal ({args.jobs:,} jobs, {args.points:,} points) | "
        f"{peer_name} ({args.peer_runs:,} runs, {args.peer_points:,} points) |",
        "| --- | --- | --- |",
    ]
    s_api, m_api = results.get("shoal api", {}), results.get("mlflow api", {})
    for key in ("jobs page", "jobs, filtered, by metric", "chart", "chart, zoomed"):
        lines.append(row(key, s_api.get(key), m_api.get(key)))
    s_b, m_b = results.get("shoal browser"), results.get("mlflow browser")
    lines += ["", "| Browser: navigation until drawn | Shoal studio | MLflow UI |", "| --- | --- | --- |"]
    if s_b is None:
        lines.append(f"| (not measured: {browser_missing}) | | |")
    else:
        for key in ("jobs page", "chart"):
            lines.append(row(key, s_b.get(key), (m_b or {}).get(key)))
    lines += [
        "",
        "What the calls are: Shoal's `studio/jobs` (50 rows with the columns `metrics.acc`, `metrics.loss`, "
        f"`params.group`; filtered: `{FILTER}` ordered by `metrics.acc desc`) and `studio/jobs/<job>/series` "
        f"(1,000 buckets of the {args.points:,} points, each with its min, max and mean; zoomed: steps "
        "400,000-599,999). "
        "MLflow's `runs/search` as its UI sends it (100 runs newest first; the same filter ordered by the "
        "metric) and `metrics/get-history-bulk-interval` (320 points, its UI's chart call). Browser: from "
        "`goto` until the jobs table has rows and until the chart's note says how many points it drew "
        "(MLflow: until the newest run's name shows, and until the metric's plot is drawn).",
        "",
        "; ".join(notes) + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("studio", text)


if __name__ == "__main__":
    main()
