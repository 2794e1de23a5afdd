"""A metric's points summed up in buckets of consecutive steps (``metric_rollup``), and the reads
the studio's charts make of a metric: its rollup buckets, its raw points in a step range, and the
raw points of a range summed up into a given number of buckets by the database.

Why: a 1,000,000-point metric takes the database about half a second to scan, whatever the query
does with the rows; its rollup is a thousand rows. ``services/studio/series.py`` picks the read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.store.tables import LatestMetricRow, MetricRollupRow

# Bucket width: 2**10 = 1,024 steps (migration 0014 fills existing points with the same width).
ROLLUP_SHIFT = 10

_COLUMNS = ("job_id", "key", "bucket", "n", "total", "vmin", "vmax", "step_min", "step_max", "ts_min", "ts_max")
_QUOTED = ", ".join('"' + c + '"' for c in _COLUMNS)
_UPSERT = (
    f"INSERT INTO metric_rollup ({_QUOTED}) "
    f"VALUES ({', '.join(['{p}'] * len(_COLUMNS))}) "
    'ON CONFLICT ("job_id", "key", "bucket") DO UPDATE SET '
    '"n" = metric_rollup."n" + excluded."n", "total" = metric_rollup."total" + excluded."total", '
    '"vmin" = {lo}(metric_rollup."vmin", excluded."vmin"), "vmax" = {hi}(metric_rollup."vmax", excluded."vmax"), '
    '"step_min" = {lo}(metric_rollup."step_min", excluded."step_min"), '
    '"step_max" = {hi}(metric_rollup."step_max", excluded."step_max"), '
    '"ts_min" = {lo}(metric_rollup."ts_min", excluded."ts_min"), '
    '"ts_max" = {hi}(metric_rollup."ts_max", excluded."ts_max")'
)
_SQL = {
    "sqlite": _UPSERT.format(p="?", lo="MIN", hi="MAX"),
    "postgresql": _UPSERT.format(p="%s", lo="LEAST", hi="GREATEST"),
}


def add_points(session: Session, job_id: int, points: list[tuple[str, float, int, int, bool]]) -> None:
    """Fold a batch of points (``(key, value, timestamp, step, is_nan)``, the write path's) into
    the rollup: one upsert row per (key, bucket) the batch touches, usually one or two."""
    buckets: dict[tuple[str, int], list[Any]] = {}
    for key, value, stamp, step, is_nan in points:
        if is_nan:
            continue
        b = buckets.get((key, step >> ROLLUP_SHIFT))
        if b is None:
            buckets[(key, step >> ROLLUP_SHIFT)] = [1, value, value, value, step, step, stamp, stamp]
            continue
        b[0] += 1
        b[1] += value
        if value < b[2]:
            b[2] = value
        if value > b[3]:
            b[3] = value
        if step < b[4]:
            b[4] = step
        if step > b[5]:
            b[5] = step
        if stamp < b[6]:
            b[6] = stamp
        if stamp > b[7]:
            b[7] = stamp
    if not buckets:
        return
    conn = session.connection()
    conn.exec_driver_sql(
        _SQL[conn.dialect.name], [(job_id, key, bucket, *agg) for (key, bucket), agg in buckets.items()]
    )


def rollup_rows(session: Session, job_id: int, key: str, steps: tuple[int, int] | None = None) -> list[Any]:
    """The rollup buckets of one metric (overlapping ``steps`` when given), in step order:
    ``(n, total, vmin, vmax, step_min, step_max, ts_min, ts_max)`` rows."""
    r = MetricRollupRow
    query = select(r.n, r.total, r.vmin, r.vmax, r.step_min, r.step_max, r.ts_min, r.ts_max).where(
        r.job_id == job_id, r.key == key
    )
    if steps is not None:
        query = query.where(r.bucket >= steps[0] >> ROLLUP_SHIFT, r.bucket <= steps[1] >> ROLLUP_SHIFT)
    return list(session.execute(query.order_by(r.bucket)).all())


def counts_by_key(session: Session, job_id: int) -> dict[str, int]:
    """How many points each metric of a run holds (the rollup's estimate; NaN points left out)."""
    r = MetricRollupRow
    return {
        k: int(n) for k, n in session.execute(select(r.key, func.sum(r.n)).where(r.job_id == job_id).group_by(r.key))
    }


def latest_of(session: Session, job_id: int) -> list[LatestMetricRow]:
    return list(session.scalars(select(LatestMetricRow).where(LatestMetricRow.job_id == job_id)))


_RAW = 'SELECT "step", "timestamp", "value", "is_nan" FROM metric WHERE "job_id" = ? AND "key" = ?'


def _driver(session: Session, sql: str, params: tuple[Any, ...]) -> list[Any]:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    return list(conn.exec_driver_sql(sql, params).all())


def raw_points(session: Session, job_id: int, key: str, steps: tuple[int, int] | None, limit: int) -> list[Any]:
    """Up to ``limit`` points of a metric in (step, timestamp) order, within ``steps`` when given:
    a range of the metric table's primary key."""
    sql, params = _RAW, [job_id, key]
    if steps is not None:
        sql += ' AND "step" >= ? AND "step" <= ?'
        params += [steps[0], steps[1]]
    sql += ' ORDER BY "step", "timestamp", "value", "is_nan" LIMIT ?'
    return _driver(session, sql, (*params, limit))


def point_range(session: Session, job_id: int, key: str, steps: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """(first step, last step, first time, last time) of a metric's points, within ``steps``."""
    sql = 'SELECT MIN("step"), MAX("step"), MIN("timestamp"), MAX("timestamp") FROM metric'
    sql += ' WHERE "job_id" = ? AND "key" = ?'
    params: tuple[Any, ...] = (job_id, key)
    if steps is not None:
        sql += ' AND "step" >= ? AND "step" <= ?'
        params += (steps[0], steps[1])
    found = _driver(session, sql, params)[0]
    return (int(found[0] or 0), int(found[1] or 0), int(found[2] or 0), int(found[3] or 0))


def bucketed_points(
    session: Session, job_id: int, key: str, axis: str, lo: int, hi: int, buckets: int, steps: tuple[int, int] | None
) -> list[Any]:
    """The points of a metric (within ``steps``) cut into ``buckets`` equal ranges of ``axis``
    ("step" or "timestamp") from ``lo`` to ``hi``, summed up by the database, in order:
    ``(step_min, step_max, ts_min, ts_max, mean, vmin, vmax, n)`` rows; NaN points left out."""
    column = '"step"' if axis == "step" else '"timestamp"'
    span = max(1, hi - lo + 1)
    bucket = f"(({column} - ?) * ? / ?)"
    sql = (
        f'SELECT MIN("step"), MAX("step"), MIN("timestamp"), MAX("timestamp"), AVG("value"), MIN("value"), '
        f'MAX("value"), COUNT(*), {bucket} AS b FROM metric WHERE "job_id" = ? AND "key" = ? AND NOT "is_nan"'
    )
    params: list[Any] = [lo, buckets, span, job_id, key]
    if steps is not None:
        sql += ' AND "step" >= ? AND "step" <= ?'
        params += [steps[0], steps[1]]
    sql += " GROUP BY b ORDER BY b"
    return [row[:8] for row in _driver(session, sql, tuple(params))]
