"""Load: 50 concurrent clients logging metrics and creating assets for 60 s, Shoal vs MLflow's server,
both on PostgreSQL; zero lost writes and zero errors expected, p50/p99 per operation reported.

    .venv/bin/python benchmarks/load.py [--clients 50] [--seconds 60] [--sqlite] [--no-peer] [--out FILE]

Each system gets a fresh database on the PostgreSQL server of ``--postgres`` (created and dropped by
the script; its user must be allowed to create databases) and runs as one server process on
127.0.0.1: ``python -m shoal.server.main``, and ``mlflow server --workers 1`` (the full ``mlflow``
package in its own environment: see benchmarks/README.md). The systems take turns, each alone
under load. ``--sqlite`` adds Shoal on SQLite.

The load is ``tests/loadgen.py``, the same code ``tests/e2e/test_load.py`` runs for a few seconds:
``--clients`` threads with their own keep-alive ``httpx.Client`` repeat, until ``--seconds`` have
passed: create a run (``runs/create``), log ``--batches`` batches of ``--points`` points of one
metric into it (``runs/log-batch``), and register the next version of one of ``--names`` model names
shared by all clients (Shoal's ``POST …/models/{name}/versions``; MLflow's ``model-versions/create``);
Shoal also registers a data version (``POST …/data/{name}/versions``), which MLflow has no match for.
Afterwards everything acknowledged is read back (runs in the experiment, each run's history, each
name's versions): acknowledged − stored is the number of lost writes. Rewrites only its own section
of docs/benchmarks.md (``<!-- load:begin -->`` … ``end``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from _common import (
    DOCS,
    REPO,
    load_average,
    machine,
    mlflow_server,
    mlflow_version,
    ms,
    ratio,
    scratch,
    shoal_server,
    today,
    write_section,
)
from tracking_scale import postgres_database

from tracking import find_server_mlflow

sys.path.insert(0, str(REPO))
from tests.loadgen import OPERATIONS, Load, Stored, Target, percentile, run_load, verify  # noqa: E402

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _mlflow_url(url: str) -> str:
    """MLflow's SQLAlchemy URL, on psycopg 3 as Shoal's (``psycopg[binary]`` installed beside mlflow)."""
    scheme, rest = url.split("://", 1)
    return "postgresql+psycopg://" + rest if scheme.startswith("postgres") else url


@contextlib.contextmanager
def _pool_size(pool: int | None) -> Iterator[None]:
    """MLflow's SQLAlchemy pool (default 5 + 10 overflow) for the server started inside."""
    names = ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW")
    saved = {n: os.environ.get(n) for n in names}
    if pool:
        os.environ.update({names[0]: str(pool), names[1]: "10"})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def measure(target: Target, args: argparse.Namespace) -> tuple[Load, Stored]:
    print(f"{target.label}: {args.clients} clients for {args.seconds:.0f} s…", flush=True)
    load = run_load(
        target, clients=args.clients, seconds=args.seconds, batches=args.batches, points=args.points, names=args.names
    )
    started = time.perf_counter()
    stored = verify(load)
    print(
        f"  {load.acknowledged:,} writes acknowledged, {stored.total:,} stored, {len(load.errors)} errors"
        f" (read back in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    for line in load.errors[:5] + stored.lost[:5]:
        print("   ", line, flush=True)
    return load, stored


def report(results: list[tuple[Load, Stored]], peer_note: str, args: argparse.Namespace, total: float) -> str:
    cmd = "benchmarks/load.py" + (f" --clients {args.clients}" if args.clients != 50 else "")
    cmd += f" --seconds {args.seconds:g}" if args.seconds != 60 else ""
    cmd += " --sqlite" if args.sqlite else ""
    lines = [
        "## Load: concurrent clients logging metrics and creating assets (`benchmarks/load.py`)",
        "",
        f"`{cmd}`: {args.clients} client threads (one keep-alive `httpx` connection each) for "
        f"{args.seconds:g} s per system; each repeats: create a run, {args.batches} `log-batch` calls of "
        f"{args.points} points into it, the next version of one of {args.names} model names all clients share "
        "(and on Shoal a data version). Each system is one server process on a fresh PostgreSQL database, "
        "alone under load; client and server share the cores. Afterwards every acknowledged write is read "
        "back: *lost* = acknowledged − stored (a version number handed to two clients counts as lost).",
        "",
        f"Machine: {machine()}; load average {load_average()}; {today()}; whole run {total / 60:.1f} min."
        + (f" {peer_note}" if peer_note else ""),
        "",
        "| system | requests | requests/s | errors | writes acknowledged | stored | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for load, stored in results:
        n = sum(len(v) for v in load.latencies.values())
        lines.append(
            f"| {load.target.label} | {n:,} | {n / load.elapsed:,.0f} | {len(load.errors)} | "
            f"{load.acknowledged:,} | {stored.total:,} | {load.acknowledged - stored.total} |"
        )
    shoal = results[0][0]
    peers = [load for load, _ in results if load.target.label.startswith("MLflow")]
    peer = peers[-1] if peers else None  # the tuned pool when there is one: its best showing
    head = "| operation | " + " | ".join(f"{load.target.label} p50 / p99 ms" for load, _ in results)
    head += " | p50 / p99 vs MLflow |" if peer else " |"
    lines += ["", head, "|---|" + "---:|" * (len(results) + (1 if peer else 0))]
    for op in OPERATIONS:
        if not any(load.latencies.get(op) for load, _ in results):
            continue
        cells = []
        for load, _ in results:
            xs = load.latencies.get(op, [])
            cells.append(f"{ms(percentile(xs, 50))} / {ms(percentile(xs, 99))} ({len(xs):,})" if xs else "—")
        row = f"| {op} | " + " | ".join(cells)
        if peer:
            a, b = shoal.latencies.get(op, []), peer.latencies.get(op, [])
            row += (
                f" | {ratio(percentile(a, 50), percentile(b, 50))} / {ratio(percentile(a, 99), percentile(b, 99))} |"
                if a and b
                else " | — |"
            )
        else:
            row += " |"
        lines.append(row)
    lines += [
        "",
        "Cells: p50 / p99 in ms (requests timed). Ratios are Shoal (PostgreSQL) over "
        + (peer.target.label if peer else "MLflow")
        + ": below 1× Shoal is faster. MLflow's default SQLAlchemy pool (5 + 10 overflow) is smaller than "
        f"{args.clients} concurrent requests: requests wait for a connection up to 30 s and then fail, so it runs a "
        "second time with a larger pool (`MLFLOW_SQLALCHEMYSTORE_POOL_SIZE`, `--mlflow-pool`).",
    ]
    for load, stored in results:
        # The same failure repeats: each distinct message once, with how often it came.
        for line, n in Counter(e[:240] for e in load.errors + stored.lost).most_common(3):
            lines.append(f"- {load.target.label}, {n}×: `{line}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--batches", type=int, default=3, help="log-batch calls per run")
    parser.add_argument("--points", type=int, default=20, help="metric points per log-batch call")
    parser.add_argument("--names", type=int, default=5, help="model (and data) names the clients share")
    parser.add_argument("--postgres", default=PG_DEFAULT, help="admin URL of the PostgreSQL server")
    parser.add_argument("--sqlite", action="store_true", help="also Shoal on SQLite")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--mlflow", help="the mlflow executable (default: $SHOAL_BENCH_MLFLOW, venv, PATH)")
    parser.add_argument(
        "--mlflow-pool",
        type=int,
        default=60,
        help="also MLflow with this SQLAlchemy pool size (0: only its default pool of 5 + 10)",
    )
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)
    exe = find_server_mlflow(args.mlflow) if args.peer is not False else None
    note = ""
    if args.peer is False:
        note = "MLflow skipped (`--no-peer`)."
    elif exe is None:
        note = "MLflow skipped: no `mlflow` with the server found (see benchmarks/README.md)."
    started = time.perf_counter()
    results: list[tuple[Load, Stored]] = []
    with scratch("shoal-bench-load-") as tmp:
        for sub in ("pg", "sqlite"):
            (tmp / sub).mkdir()
        with postgres_database(args.postgres) as url, shoal_server(tmp / "pg", database_url=url) as server:
            ws = f"{server.url}/api/v1/workspaces/default"
            results.append(measure(Target("Shoal", f"{ws}/mlflow/api/2.0/mlflow", server.headers, ws), args))
        if exe is not None:
            version = mlflow_version(exe)
            note = f"MLflow {version} (`mlflow server --workers 1`, psycopg 3)."
            pools = [None] + ([args.mlflow_pool] if args.mlflow_pool else [])
            for pool in pools:
                label = f"MLflow {version}" + (f" (pool {pool})" if pool else "")
                home = tmp / f"mlflow-{pool or 'default'}"
                home.mkdir()
                with contextlib.ExitStack() as stack:
                    url = stack.enter_context(postgres_database(args.postgres))
                    stack.enter_context(_pool_size(pool))
                    peer = stack.enter_context(mlflow_server(exe, home, backend_store_uri=_mlflow_url(url)))
                    results.append(measure(Target(label, f"{peer.url}/api/2.0/mlflow"), args))
        if args.sqlite:
            with shoal_server(tmp / "sqlite") as server:
                ws = f"{server.url}/api/v1/workspaces/default"
                target = Target("Shoal (SQLite)", f"{ws}/mlflow/api/2.0/mlflow", server.headers, ws)
                results.append(measure(target, args))
    total = time.perf_counter() - started
    text = report(results, note, args, total)
    print()
    print(text)
    write_section("load", text, args.out)
    print(f"\nwrote the load section of {args.out} ({total / 60:.1f} min)")
    shoal = [(load, stored) for load, stored in results if load.target.shoal]
    lost = sum(load.acknowledged - stored.total for load, stored in shoal)
    return 1 if lost or any(load.errors for load, _ in shoal) else 0


if __name__ == "__main__":
    sys.exit(main())
