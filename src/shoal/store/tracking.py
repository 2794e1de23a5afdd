"""Rows of the MLflow tracking store: experiments, metric points, latest metrics, params, tags.

Writes use the dialect's ``INSERT … ON CONFLICT`` so a replayed batch inserts nothing and the
latest value of a metric is settled by the database in the same statement (MLflow's order: the
highest step, then the newest timestamp, then the largest value).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shoal.store.tables import ExperimentRow, LatestMetricRow, MetricRow, ParamRow, RunTagRow

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


# -- metrics --------------------------------------------------------------------------------


def insert_metrics(session: Session, job_id: int, points: list[dict[str, Any]]) -> None:
    """``points``: dicts with key, value, timestamp, step, is_nan (value 0 when NaN)."""
    if not points:
        return
    rows = [{"job_id": job_id, **p} for p in points]
    # Core inserts on the tables: the ORM bulk path costs about half of a 1,000-point batch.
    session.execute(_insert(session, MetricRow.__table__).on_conflict_do_nothing(), rows)
    latest: dict[str, dict[str, Any]] = {}
    for p in points:
        best = latest.get(p["key"])
        if best is None or _order(p) > _order(best):
            latest[p["key"]] = p
    stmt = _insert(session, LatestMetricRow.__table__)
    ex = stmt.excluded
    cur = LatestMetricRow.__table__.c
    newer = or_(
        ex.step > cur.step,
        and_(ex.step == cur.step, ex.timestamp > cur.timestamp),
        and_(ex.step == cur.step, ex.timestamp == cur.timestamp, ex.value > cur.value),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "key"],
        set_={"value": ex.value, "timestamp": ex.timestamp, "step": ex.step, "is_nan": ex.is_nan},
        where=newer,
    )
    session.execute(stmt, [{"job_id": job_id, **p} for p in latest.values()])


def _order(p: dict[str, Any]) -> tuple[int, int, float]:
    return (p["step"], p["timestamp"], p["value"])


def history_page(
    session: Session, job_id: int, key: str, limit: int | None, after: tuple[int, int, int] | None
) -> list[Any]:
    """Points of one metric in (step, timestamp, id) order, starting after the ``after`` key.

    Plain rows (``id, step, timestamp, value, is_nan`` as attributes), not ORM entities: building
    an entity per point made a 100,000-point history several times slower."""
    query = select(MetricRow.id, MetricRow.step, MetricRow.timestamp, MetricRow.value, MetricRow.is_nan).where(
        MetricRow.job_id == job_id, MetricRow.key == key
    )
    if after is not None:
        step, stamp, last_id = after
        query = query.where(
            or_(
                MetricRow.step > step,
                and_(MetricRow.step == step, MetricRow.timestamp > stamp),
                and_(MetricRow.step == step, MetricRow.timestamp == stamp, MetricRow.id > last_id),
            )
        )
    query = query.order_by(MetricRow.step, MetricRow.timestamp, MetricRow.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


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
