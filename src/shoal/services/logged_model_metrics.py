"""Metrics of MLflow 3 logged models: a point logged with a ``model_id`` (``mlflow.log_metric(...,
model_id=…)``, or a ``log-batch`` whose metrics carry one) is a point of its run's history and
also one of that model's ``metrics``, as in MLflow's own store (``logged_model_metrics``).

Kept apart from ``services/tracking.py`` and ``services/logged_models.py`` so both can use it
without importing each other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shoal.errors import NotFoundError, UserError
from shoal.store.tables import JobRow, LoggedModelMetricRow, LoggedModelRow

MAX_DATASET_NAME, MAX_DATASET_DIGEST = 500, 64


def model_points(metrics: list[dict[str, Any]], points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points (already validated by the caller, in the same order as ``metrics``) that name
    a logged model, with that model's id and the dataset they were measured on."""
    out = []
    for raw, point in zip(metrics, points, strict=True):
        model_id = raw.get("model_id")
        if not model_id:
            continue
        if not isinstance(model_id, str) or "/" in model_id or len(model_id) > 64:
            raise UserError(f"Invalid value {str(model_id)[:100]!r} for 'model_id' of metric '{point['key']}'")
        name, digest = str(raw.get("dataset_name") or ""), str(raw.get("dataset_digest") or "")
        if len(name) > MAX_DATASET_NAME or len(digest) > MAX_DATASET_DIGEST:
            raise UserError(f"Dataset name or digest of metric '{point['key']}' is too long")
        out.append({**point, "model": model_id, "dataset_name": name, "dataset_digest": digest})
    return out


def insert(session: Session, run: JobRow, points: list[dict[str, Any]]) -> None:
    """Record ``model_points`` of run ``run``; every named model must exist in its workspace. A
    replayed point inserts nothing."""
    if not points:
        return
    wanted = {p["model"] for p in points}
    ids = dict(
        session.execute(
            select(LoggedModelRow.model_id, LoggedModelRow.id).where(
                LoggedModelRow.workspace_id == run.workspace_id,
                LoggedModelRow.model_id.in_(wanted),
                LoggedModelRow.lifecycle_stage == "active",
            )
        ).all()
    )
    missing = sorted(wanted - set(ids))
    if missing:
        raise NotFoundError(f"Logged model with ID '{missing[0]}' not found.", details={"model_id": missing[0]})
    rows = [
        {
            "model_id": ids[p["model"]],
            "job_id": run.id,
            "key": p["key"],
            "value": p["value"],
            "timestamp": p["timestamp"],
            "step": p["step"],
            "is_nan": p["is_nan"],
            "dataset_name": p["dataset_name"],
            "dataset_digest": p["dataset_digest"],
        }
        for p in points
    ]
    insert_stmt = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert_stmt(LoggedModelMetricRow.__table__).on_conflict_do_nothing(), rows)


def metrics_of(session: Session, model_row_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each model's metric points in MLflow's JSON shape, oldest first."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in model_row_ids}
    if not model_row_ids:
        return out
    query = (
        select(LoggedModelMetricRow, JobRow.name, LoggedModelRow.model_id)
        .join(JobRow, JobRow.id == LoggedModelMetricRow.job_id)
        .join(LoggedModelRow, LoggedModelRow.id == LoggedModelMetricRow.model_id)
        .where(LoggedModelMetricRow.model_id.in_(model_row_ids))
        .order_by(LoggedModelMetricRow.timestamp, LoggedModelMetricRow.step, LoggedModelMetricRow.id)
    )
    for m, run, model_id in session.execute(query):
        point: dict[str, Any] = {
            "key": m.key,
            "value": "NaN" if m.is_nan else _finite(m.value),
            "timestamp": m.timestamp,
            "step": m.step,
            "run_id": run,
            "model_id": model_id,
        }
        if m.dataset_name:
            point["dataset_name"] = m.dataset_name
        if m.dataset_digest:
            point["dataset_digest"] = m.dataset_digest
        out[m.model_id].append(point)
    return out


def _finite(value: float) -> float | str:
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return value


def latest_value(points: list[dict[str, Any]], key: str) -> float | None:
    """The value search filters compare: the newest point of ``key`` (timestamp, then step)."""
    best = None
    for p in points:
        if p["key"] == key and (best is None or (p["timestamp"], p["step"]) >= (best["timestamp"], best["step"])):
            best = p
    if best is None or isinstance(best["value"], str) and best["value"] == "NaN":
        return None
    return float(best["value"])
