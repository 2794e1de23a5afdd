"""Rows of the MLflow tracking store: experiments, metric points, latest metrics, params, tags.

Writes use the dialect's ``INSERT … ON CONFLICT`` so a replayed batch inserts nothing and the
latest value of a metric is settled by the database in the same statement (MLflow's order: the
highest step, then the newest timestamp, then the largest value).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shoal.store.tables import ExperimentRow, LatestMetricRow, ParamRow, RunTagRow

DEFAULT_EXPERIMENT = "Default"
DEFAULT_EXPERIMENT_ID = "0"


def now_ms() -> int:
    return int(time.time() * 1000)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def experiment_id(row: ExperimentRow) -> str:
    """The id MLflow clients see: "0" for a workspace's Default experiment, else the row id."""
    return DEFAULT_EXPERIMENT_ID if row.is_default else str(row.id)


def find_experiment(session: Session, ws_id: int, exp_id: str) -> ExperimentRow | None:
    if exp_id == DEFAULT_EXPERIMENT_ID:
        return session.scalar(
            select(ExperimentRow).where(ExperimentRow.workspace_id == ws_id, ExperimentRow.is_default.is_(True))
        )
    if not exp_id.isdigit():
        return None
    row = session.get(ExperimentRow, int(exp_id))
    return row if row is not None and row.workspace_id == ws_id and not row.is_default else None


def find_experiment_by_name(session: Session, ws_id: int, name: str) -> ExperimentRow | None:
    return session.scalar(select(ExperimentRow).where(ExperimentRow.workspace_id == ws_id, ExperimentRow.name == name))


def get_or_create_experiment(session: Session, ws_id: int, name: str) -> ExperimentRow:
    """Safe under concurrency: the unique (workspace, name) key decides who creates it."""
    row = find_experiment_by_name(session, ws_id, name)
    if row is not None:
        return row
    stamp = now_ms()
    stmt = (
        _insert(session, ExperimentRow)
        .values(
            workspace_id=ws_id,
            name=name,
            is_default=name == DEFAULT_EXPERIMENT,
            artifact_location="",
            lifecycle_stage="active",
            tags={},
            creation_time=stamp,
            last_update_time=stamp,
        )
        .on_conflict_do_nothing()
    )
    session.execute(stmt)
    found = find_experiment_by_name(session, ws_id, name)
    assert found is not None
    return found


def ensure_default_experiment(session: Session, ws_id: int) -> ExperimentRow:
    row = find_experiment(session, ws_id, DEFAULT_EXPERIMENT_ID)
    return row if row is not None else get_or_create_experiment(session, ws_id, DEFAULT_EXPERIMENT)


# -- metrics ----------------------------------------------------------------------------------

# A point as the write path carries it: (key, value, timestamp, step, is_nan), value 0 when NaN.
Point = tuple[str, float, int, int, bool]

# The two statements of every metric write, as plain SQL for the driver: built and compiled once,
# with no per-row parameter processing (SQLAlchemy's took about half of a 1,000-point batch).
# Quoted names: "key" and "timestamp" are keywords in one dialect or the other.
_METRIC_COLUMNS = '"job_id", "key", "value", "timestamp", "step", "is_nan"'
# The latest value moves only to a point that comes later in MLflow's order: the highest step,
# then the newest timestamp, then the largest value.
_LATEST_SQL = (
    f"INSERT INTO latest_metric ({_METRIC_COLUMNS}) VALUES ({{p}}, {{p}}, {{p}}, {{p}}, {{p}}, {{p}}) "
    'ON CONFLICT ("job_id", "key") DO UPDATE SET "value" = excluded."value", '
    '"timestamp" = excluded."timestamp", "step" = excluded."step", "is_nan" = excluded."is_nan" '
    'WHERE excluded."step" > latest_metric."step" '
    'OR (excluded."step" = latest_metric."step" AND excluded."timestamp" > latest_metric."timestamp") '
    'OR (excluded."step" = latest_metric."step" AND excluded."timestamp" = latest_metric."timestamp" '
    'AND excluded."value" > latest_metric."value")'
)
_SQL = {
    # One row per parameter set; a replayed point meets the unique key and adds nothing.
    "sqlite": (
        f"INSERT INTO metric ({_METRIC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        _LATEST_SQL.format(p="?"),
    ),
    # One statement for the whole batch (one round trip): the columns travel as arrays.
    "postgresql": (
        f"INSERT INTO metric ({_METRIC_COLUMNS}) SELECT %s, * FROM "
        "unnest(%s::varchar[], %s::float8[], %s::int8[], %s::int8[], %s::bool[]) ON CONFLICT DO NOTHING",
        _LATEST_SQL.format(p="%s"),
    ),
}


def insert_metrics(session: Session, job_id: int, points: list[Point]) -> None:
    """Store the points (a replayed one adds nothing) and move each metric's latest value."""
    if not points:
        return
    conn = session.connection()
    dialect = conn.dialect.name
    insert_sql, latest_sql = _SQL[dialect]
    if dialect == "postgresql":
        keys, values, stamps, steps, nans = (list(c) for c in zip(*points, strict=True))
        conn.exec_driver_sql(insert_sql, (job_id, keys, values, stamps, steps, nans))
    else:
        conn.exec_driver_sql(insert_sql, [(job_id, *p) for p in points])
    latest: dict[str, Point] = {}
    for p in points:
        best = latest.get(p[0])
        if best is None or (p[3], p[2], p[1]) > (best[3], best[2], best[1]):  # (step, timestamp, value)
            latest[p[0]] = p
    conn.exec_driver_sql(latest_sql, [(job_id, *p) for p in latest.values()])


# A history page: one range of the metric's primary key, in key order.
_HISTORY_SQL = 'SELECT "step", "timestamp", "value", "is_nan" FROM metric WHERE "job_id" = ? AND "key" = ?'
_HISTORY_AFTER = ' AND ("step", "timestamp", "value", "is_nan") > (?, ?, ?, ?)'
_HISTORY_ORDER = ' ORDER BY "step", "timestamp", "value", "is_nan"'

# (step, timestamp, value, is_nan) of a point: a history row, and the key a page token carries.
HistoryKey = tuple[int, int, float, bool]


def history_page(session: Session, job_id: int, key: str, limit: int | None, after: HistoryKey | None) -> list[Any]:
    """Points of one metric as ``(step, timestamp, value, is_nan)`` rows in that order, starting
    after the ``after`` key: a range scan of the primary key, whatever the depth of the page.

    Plain driver rows: building an entity, or even a SQLAlchemy row, per point made a
    100,000-point history several times slower."""
    sql, params = _HISTORY_SQL, [job_id, key]
    if after is not None:
        sql += _HISTORY_AFTER
        params += [int(after[0]), int(after[1]), float(after[2]), bool(after[3])]
    sql += _HISTORY_ORDER
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    return list(conn.exec_driver_sql(sql, tuple(params)).all())


# -- params and tags ------------------------------------------------------------------------


def existing_params(session: Session, job_id: int, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    rows = session.execute(
        select(ParamRow.key, ParamRow.value).where(ParamRow.job_id == job_id, ParamRow.key.in_(keys))
    )
    return {k: v for k, v in rows}


def insert_params(session: Session, job_id: int, params: dict[str, str]) -> None:
    if params:
        rows = [{"job_id": job_id, "key": k, "value": v} for k, v in params.items()]
        session.execute(_insert(session, ParamRow).on_conflict_do_nothing(), rows)


def set_tags(session: Session, job_id: int, tags: dict[str, str]) -> None:
    if tags:
        stmt = _insert(session, RunTagRow)
        stmt = stmt.on_conflict_do_update(index_elements=["job_id", "key"], set_={"value": stmt.excluded.value})
        session.execute(stmt, [{"job_id": job_id, "key": k, "value": v} for k, v in tags.items()])


# -- reading a run's data -------------------------------------------------------------------


def params_of(session: Session, job_ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in job_ids}
    for job_id, key, value in session.execute(
        select(ParamRow.job_id, ParamRow.key, ParamRow.value).where(ParamRow.job_id.in_(job_ids))
    ):
        out[job_id][key] = value
    return out


def tags_of(session: Session, job_ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in job_ids}
    for job_id, key, value in session.execute(
        select(RunTagRow.job_id, RunTagRow.key, RunTagRow.value).where(RunTagRow.job_id.in_(job_ids))
    ):
        out[job_id][key] = value
    return out


def latest_metrics_of(session: Session, job_ids: list[int]) -> dict[int, list[LatestMetricRow]]:
    out: dict[int, list[LatestMetricRow]] = {i: [] for i in job_ids}
    for row in session.scalars(select(LatestMetricRow).where(LatestMetricRow.job_id.in_(job_ids))):
        out[row.job_id].append(row)
    return out


def metric_value(row: Any) -> float:
    return float("nan") if row.is_nan else row.value


def run_summary(session: Session, job_id: int) -> tuple[dict[str, str], dict[str, float]]:
    """A job's params and the last value of each of its metrics (for ``job show``)."""
    params = params_of(session, [job_id])[job_id]
    metrics = {m.key: metric_value(m) for m in latest_metrics_of(session, [job_id])[job_id]}
    return params, metrics
