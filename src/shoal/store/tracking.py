"""Rows of the MLflow tracking store: experiments, metric points, latest metrics, params, tags.

Writes use the dialect's ``INSERT … ON CONFLICT`` so a replayed batch inserts nothing and the
latest value of a metric is settled by the database in the same statement (MLflow's order: the
highest step, then the newest timestamp, then the largest value).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.errors import UserError
from shoal.store import metric_rollup
from shoal.store.dialect import insert
from shoal.store.tables import (
    ExperimentRow,
    JobRow,
    LatestMetricRow,
    LoggedModelMetricRow,
    LoggedModelRow,
    MetricRow,
    ParamRow,
    RunInputRow,
    RunTagRow,
)

DEFAULT_EXPERIMENT = "Default"
DEFAULT_EXPERIMENT_ID = "0"


def now_ms() -> int:
    return int(time.time() * 1000)


def compare(col: Any, op: str, value: Any) -> Any:
    """A search filter's comparison (MLflow's operators) on a column."""
    if op == "=":
        return col == value
    if op == "!=":
        return col != value
    if op == ">":
        return col > value
    if op == ">=":
        return col >= value
    if op == "<":
        return col < value
    if op == "<=":
        return col <= value
    if op == "LIKE":
        return col.like(value)
    if op == "ILIKE":
        return func.lower(col).like(str(value).lower())
    if op == "IN":
        return col.in_(value)
    if op == "NOT IN":
        return col.not_in(value)
    if op == "IS NULL":
        return col.is_(None)
    if op == "IS NOT NULL":
        return col.is_not(None)
    raise UserError(f"Invalid comparator '{op}'")


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


def experiment_names(session: Session, ws_id: int, limit: int = 1000) -> list[str]:
    """Up to ``limit`` names of the workspace's active experiments (for not-found hints)."""
    query = select(ExperimentRow.name).where(
        ExperimentRow.workspace_id == ws_id, ExperimentRow.lifecycle_stage == "active"
    )
    return list(session.scalars(query.limit(limit)))


def get_or_create_experiment(session: Session, ws_id: int, name: str) -> ExperimentRow:
    """Safe under concurrency: the unique (workspace, name) key decides who creates it."""
    row = find_experiment_by_name(session, ws_id, name)
    if row is not None:
        return row
    stamp = now_ms()
    stmt = (
        insert(session, ExperimentRow)
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


def experiments_by_id(session: Session, ids: set[int]) -> list[ExperimentRow]:
    return list(session.scalars(select(ExperimentRow).where(ExperimentRow.id.in_(ids)))) if ids else []


EXPERIMENT_COLUMNS = {
    "name": ExperimentRow.name,
    "creation_time": ExperimentRow.creation_time,
    "last_update_time": ExperimentRow.last_update_time,
    "experiment_id": ExperimentRow.id,
}


def search_experiments(
    session: Session, ws_id: int, stages: tuple[str, ...], clauses: list[Any], orders: list[Any]
) -> list[ExperimentRow]:
    """The workspace's experiments in these stages matching the attribute clauses, in order.
    The caller has checked the keys are of :data:`EXPERIMENT_COLUMNS`; tag clauses are its own
    (experiment tags are a JSON map)."""
    query = select(ExperimentRow).where(ExperimentRow.workspace_id == ws_id, ExperimentRow.lifecycle_stage.in_(stages))
    columns = EXPERIMENT_COLUMNS
    for c in clauses:
        if c.kind == "attribute":
            value = c.value if c.key == "name" else (int(c.value) if isinstance(c.value, float) else c.value)
            query = query.where(compare(columns[c.key], c.op, value))
    order_cols = [columns[o.key].asc() if o.ascending else columns[o.key].desc() for o in orders]
    query = query.order_by(*order_cols, ExperimentRow.creation_time.desc(), ExperimentRow.id.asc())
    return list(session.scalars(query))


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
    """Store the points (a replayed one adds nothing), move each metric's latest value and fold the
    points into the metric's rollup (``store/metric_rollup.py``)."""
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
    metric_rollup.add_points(session, job_id, points)


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
        session.execute(insert(session, ParamRow).on_conflict_do_nothing(), rows)


def set_tags(session: Session, job_id: int, tags: dict[str, str]) -> None:
    if tags:
        stmt = insert(session, RunTagRow)
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


def inputs_of(session: Session, job_ids: list[int]) -> dict[int, list[RunInputRow]]:
    out: dict[int, list[RunInputRow]] = {i: [] for i in job_ids}
    for inp in session.scalars(select(RunInputRow).where(RunInputRow.job_id.in_(job_ids)).order_by(RunInputRow.id)):
        out[inp.job_id].append(inp)
    return out


def add_inputs(session: Session, job_id: int, entries: list[dict[str, Any]]) -> None:
    """A run's dataset inputs; one already logged is kept as it is."""
    for e in entries:
        session.execute(insert(session, RunInputRow).values(job_id=job_id, **e).on_conflict_do_nothing())


def find_tag(session: Session, job_id: int, key: str) -> RunTagRow | None:
    return session.get(RunTagRow, (job_id, key))


def metric_value(row: Any) -> float:
    return float("nan") if row.is_nan else row.value


def run_summary(session: Session, job_id: int) -> tuple[dict[str, str], dict[str, float]]:
    """A job's params and the last value of each of its metrics (for ``job show``)."""
    params = params_of(session, [job_id])[job_id]
    metrics = {m.key: metric_value(m) for m in latest_metrics_of(session, [job_id])[job_id]}
    return params, metrics


# -- logged models --------------------------------------------------------------------------


def find_logged_model(session: Session, ws_id: int, model_id: str) -> LoggedModelRow | None:
    return session.scalar(
        select(LoggedModelRow).where(LoggedModelRow.workspace_id == ws_id, LoggedModelRow.model_id == model_id)
    )


def logged_models_with_runs(session: Session, ws_id: int, exp_ids: list[int]) -> list[Any]:
    """The active logged models of these experiments with the run id of each (or None), newest first."""
    query = (
        select(LoggedModelRow, JobRow.name)
        .outerjoin(JobRow, JobRow.id == LoggedModelRow.job_id)
        .where(
            LoggedModelRow.workspace_id == ws_id,
            LoggedModelRow.experiment_id.in_(exp_ids),
            LoggedModelRow.lifecycle_stage == "active",
        )
        .order_by(LoggedModelRow.creation_time.desc(), LoggedModelRow.id.desc())
    )
    return list(session.execute(query))


def active_logged_model_ids(session: Session, ws_id: int, model_ids: set[str]) -> dict[str, int]:
    """Row ids of those of the named logged models that exist and are active."""
    return dict(
        session.execute(
            select(LoggedModelRow.model_id, LoggedModelRow.id).where(
                LoggedModelRow.workspace_id == ws_id,
                LoggedModelRow.model_id.in_(model_ids),
                LoggedModelRow.lifecycle_stage == "active",
            )
        ).all()
    )


def insert_logged_model_metrics(session: Session, points: list[dict[str, Any]]) -> None:
    """Logged-model metric points; a replayed one adds nothing."""
    session.execute(insert(session, LoggedModelMetricRow.__table__).on_conflict_do_nothing(), points)


def logged_model_metric_rows(session: Session, model_row_ids: list[int]) -> list[Any]:
    """``(point row, run id, model id)`` of each point of these models, oldest first."""
    query = (
        select(LoggedModelMetricRow, JobRow.name, LoggedModelRow.model_id)
        .join(JobRow, JobRow.id == LoggedModelMetricRow.job_id)
        .join(LoggedModelRow, LoggedModelRow.id == LoggedModelMetricRow.model_id)
        .where(LoggedModelMetricRow.model_id.in_(model_row_ids))
        .order_by(LoggedModelMetricRow.timestamp, LoggedModelMetricRow.step, LoggedModelMetricRow.id)
    )
    return list(session.execute(query))


def metric_histories(session: Session, job_ids: list[int], key: str) -> dict[int, list[tuple[int, float]]]:
    """Every ``(step, value)`` point of one metric for each of these jobs, in step order."""
    out: dict[int, list[tuple[int, float]]] = {}
    if not job_ids:
        return out
    query = (
        select(MetricRow.job_id, MetricRow.step, MetricRow.value, MetricRow.is_nan)
        .where(MetricRow.job_id.in_(job_ids), MetricRow.key == key)
        .order_by(MetricRow.job_id, MetricRow.step, MetricRow.timestamp)
    )
    for job_id, step, value, is_nan in session.execute(query):
        out.setdefault(job_id, []).append((int(step), float("nan") if is_nan else float(value)))
    return out


def experiment_by_row_id(session: Session, row_id: int | None) -> ExperimentRow | None:
    return session.get(ExperimentRow, row_id) if row_id is not None else None


def newest_logged_model(session: Session, ws_id: int, run: str, name: str) -> LoggedModelRow | None:
    """The newest active model called ``name`` that run ``run`` logged."""
    return session.scalar(
        select(LoggedModelRow)
        .join(JobRow, JobRow.id == LoggedModelRow.job_id)
        .where(
            LoggedModelRow.workspace_id == ws_id,
            JobRow.name == run,
            LoggedModelRow.name == name,
            LoggedModelRow.lifecycle_stage == "active",
        )
        .order_by(LoggedModelRow.id.desc())
        .limit(1)
    )
