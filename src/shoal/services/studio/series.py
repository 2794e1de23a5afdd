"""A metric of a job as the studio's charts draw it: every point while that is at most the points
asked for, else down-sampled on the server into buckets that keep each one's min and max (a spike
survives any zoom level) with its mean, and a step range to zoom into.

Three reads, cheapest first (``store/metric_rollup.py``):

1. at most ``points`` points in the range (by the rollup's count): the points themselves;
2. at most ``RAW_BUCKETING`` points: the database sums the raw points up into ``points`` buckets of
   steps (or of time, for a metric logged at few distinct steps, such as MLflow's default step 0);
3. more: the rollup's buckets of 1,024 steps, merged into ``points`` buckets here. A million-point
   metric is a thousand rollup rows, so drawing it costs about what drawing a thousand points does.
"""

from __future__ import annotations

import math
from typing import Any

from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs.state import get_row
from shoal.services.workspaces import workspace_id
from shoal.store import metric_rollup
from shoal.store import runs as run_store

DEFAULT_POINTS = 1000
MAX_POINTS = 5000
# Up to this many points in range, the raw points are bucketed by the database (exact buckets);
# past it, the rollup's buckets are merged (bucket edges rounded to 1,024 steps).
RAW_BUCKETING = 100_000
MAX_RUNS = 20


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _int_arg(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name} must be a whole number, got {raw[:40]!r}") from None
    if abs(value) > 2**62:
        raise UserError(f"{name} must be within ±2**62, got {raw[:40]}")
    return value


def parse_args(points: str | None, step_from: str | None, step_to: str | None) -> tuple[int, tuple[int, int] | None]:
    n = _int_arg(points, "points") or DEFAULT_POINTS
    if not 2 <= n <= MAX_POINTS:
        raise UserError(f"points must be from 2 to {MAX_POINTS}, got {n}")
    lo, hi = _int_arg(step_from, "step_from"), _int_arg(step_to, "step_to")
    if lo is None and hi is None:
        return n, None
    lo = -(2**62) if lo is None else lo
    hi = 2**62 if hi is None else hi
    if lo > hi:
        raise UserError(f"step_from ({lo}) is after step_to ({hi})")
    return n, (lo, hi)


def series(
    ctx: ServiceContext, workspace: str, job: str, key: str, points: int, steps: tuple[int, int] | None
) -> dict[str, Any]:
    """One metric of one job (see the module's doc); NOT_FOUND for an unknown job."""
    if not key:
        raise UserError("key (the metric's name) is required")
    with ctx.db.read() as session:
        row = get_row(session, workspace_id(session, workspace), job)
        return _series(session, row.id, job, key, points, steps)


def series_of_runs(
    ctx: ServiceContext, workspace: str, runs: list[str], key: str, points: int, steps: tuple[int, int] | None
) -> dict[str, Any]:
    """The same metric of several jobs (compare); unknown jobs are left out."""
    if not key:
        raise UserError("key (the metric's name) is required")
    names = list(dict.fromkeys(r for r in runs if r))
    if not names:
        raise UserError("runs must name at least one job")
    if len(names) > MAX_RUNS:
        raise UserError(f"runs may name at most {MAX_RUNS} jobs, got {len(names)}")
    with ctx.db.read() as session:
        ids = run_store.ids_by_name(session, workspace_id(session, workspace), names)
        return {"series": [_series(session, ids[n], n, key, points, steps) for n in names if n in ids]}


def _series(
    session: Any, job_id: int, job: str, key: str, points: int, steps: tuple[int, int] | None
) -> dict[str, Any]:
    whole = metric_rollup.rollup_rows(session, job_id, key)
    total = sum(int(r.n) for r in whole)
    out: dict[str, Any] = {"key": key, "job": job, "sampled": False, "total": total}
    out["step_range"] = [min(r.step_min for r in whole), max(r.step_max for r in whole)] if whole else None
    if steps is not None and whole:
        rows = [r for r in whole if r.step_max >= steps[0] and r.step_min <= steps[1]]
    else:
        rows = whole
    in_range = sum(int(r.n) for r in rows)
    # The rollup counts whole buckets of 1,024 steps: a narrow zoom may hold fewer points than it
    # says, so ask for the points themselves (at most ``points + 1`` rows) before sampling.
    if in_range <= RAW_BUCKETING:
        raw = metric_rollup.raw_points(session, job_id, key, steps, points + 1)
        if len(raw) <= points:  # also a metric of NaN points only, which the rollup leaves out
            if not whole and raw:
                out["total"] = len(raw)
            return _columns(out, [(s, t, None if nan else _number(v)) for s, t, v, nan in raw])
    out["sampled"] = True
    if rows:
        lo, hi = rows[0].step_min, rows[-1].step_max
        t_lo, t_hi = min(r.ts_min for r in rows), max(r.ts_max for r in rows)
    else:  # points written around the rollup (a bulk load): their range from the points
        lo, hi, t_lo, t_hi = metric_rollup.point_range(session, job_id, key, steps)
    if steps is not None:
        lo, hi = max(lo, steps[0]), min(hi, steps[1])
    if in_range > RAW_BUCKETING and rows:
        return _sampled(out, _merge(rows, lo, hi, points))
    if hi - lo + 1 >= points:
        buckets = metric_rollup.bucketed_points(session, job_id, key, "step", lo, hi, points, steps)
    else:  # few distinct steps (all at step 0, say): cut the time axis instead
        buckets = metric_rollup.bucketed_points(session, job_id, key, "timestamp", t_lo, t_hi, points, steps)
    return _sampled(out, [tuple(b) for b in buckets])


def _merge(rows: list[Any], lo: int, hi: int, points: int) -> list[tuple[Any, ...]]:
    """Rollup rows merged into at most ``points`` buckets of equal step width over [lo, hi]."""
    width = max(1, math.ceil((hi - lo + 1) / points))
    merged: dict[int, list[Any]] = {}
    for r in rows:
        b = (max(r.step_min, lo) - lo) // width
        m = merged.get(b)
        if m is None:
            merged[b] = [r.step_min, r.step_max, r.ts_min, r.ts_max, r.total, r.vmin, r.vmax, r.n]
            continue
        m[0], m[1] = min(m[0], r.step_min), max(m[1], r.step_max)
        m[2], m[3] = min(m[2], r.ts_min), max(m[3], r.ts_max)
        m[4] += r.total
        m[5], m[6] = min(m[5], r.vmin), max(m[6], r.vmax)
        m[7] += r.n
    return [
        (s0, s1, t0, t1, total / n if n else None, vmin, vmax, n)
        for s0, s1, t0, t1, total, vmin, vmax, n in (merged[b] for b in sorted(merged))
    ]


def _columns(out: dict[str, Any], points: list[tuple[int, int, float | None]]) -> dict[str, Any]:
    out["step"] = [p[0] for p in points]
    out["time"] = [p[1] for p in points]
    out["value"] = [p[2] for p in points]
    out["min"] = out["value"]
    out["max"] = out["value"]
    return out


def _sampled(out: dict[str, Any], buckets: list[tuple[Any, ...]]) -> dict[str, Any]:
    out["step"] = [(int(b[0]) + int(b[1])) // 2 for b in buckets]
    out["time"] = [(int(b[2]) + int(b[3])) // 2 for b in buckets]
    out["value"] = [_number(float(b[4])) if b[4] is not None else None for b in buckets]
    out["min"] = [_number(float(b[5])) for b in buckets]
    out["max"] = [_number(float(b[6])) for b in buckets]
    return out
