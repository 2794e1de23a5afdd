"""Metrics of MLflow 3 logged models: a point logged with a ``model_id`` (``mlflow.log_metric(...,
model_id=…)``, or a ``log-batch`` whose metrics carry one) is a point of its run's history and
also one of that model's ``metrics``, as in MLflow's own store (``logged_model_metrics``).

The routes ``runs/log-metric`` and ``runs/log-batch`` go through :func:`log_metric` and
:func:`log_batch` here, which wrap the run's own logging in ``services/tracking/metrics.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from shoal.errors import NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.tracking import metrics as run_metrics
from shoal.services.workspaces import workspace_id
from shoal.store import runs as run_store
from shoal.store import tracking as tracking_rows

MAX_DATASET_NAME, MAX_DATASET_DIGEST = 500, 64


def _point(raw: dict[str, Any]) -> dict[str, Any]:
    """One metric validated as the run's own log validates it, with its model and dataset."""
    point = run_metrics.metric_point(raw)
    if not isinstance(point, dict):  # a (key, value, timestamp, step, is_nan) tuple
        point = dict(zip(("key", "value", "timestamp", "step", "is_nan"), point, strict=True))
    model_id = raw.get("model_id")
    if not isinstance(model_id, str) or "/" in model_id or len(model_id) > 64:
        raise UserError(f"Invalid value {str(model_id)[:100]!r} for 'model_id' of metric '{point['key']}'")
    name, digest = str(raw.get("dataset_name") or ""), str(raw.get("dataset_digest") or "")
    if len(name) > MAX_DATASET_NAME or len(digest) > MAX_DATASET_DIGEST:
        raise UserError(f"Dataset name or digest of metric '{point['key']}' is too long")
    return {**point, "model": model_id, "dataset_name": name, "dataset_digest": digest}


def _models(session: Session, ws_id: int, wanted: set[str]) -> dict[str, int]:
    """Row ids of the named logged models; NotFoundError naming the first that does not exist."""
    ids = tracking_rows.active_logged_model_ids(session, ws_id, wanted)
    missing = sorted(wanted - set(ids))
    if missing:
        raise NotFoundError(f"Logged model with ID '{missing[0]}' not found.", details={"model_id": missing[0]})
    return ids


def _with_models(
    ctx: ServiceContext,
    workspace: str,
    data: dict[str, Any],
    metrics: Any,
    log: Callable[[ServiceContext, str, dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Log to the run as usual; the points naming a model are then recorded for it too. The
    models are checked first, so an unknown one refuses the whole request (as MLflow's store,
    the model's copy is written in its own transaction after the run's)."""
    raw = [m for m in metrics or [] if isinstance(m, dict) and m.get("model_id")] if isinstance(metrics, list) else []
    if not raw:
        return log(ctx, workspace, data)
    points = [_point(m) for m in raw]
    with ctx.db.read() as session:
        _models(session, workspace_id(session, workspace), {p["model"] for p in points})
    body = log(ctx, workspace, data)
    run = str(data.get("run_id") or data.get("run_uuid") or "")
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        job_id = run_store.job_id(session, ws_id, run)
        if job_id is None:
            raise NotFoundError(f"Run with id={run} not found")
        ids = _models(session, ws_id, {p["model"] for p in points})
        rows = [
            {
                "model_id": ids[p["model"]],
                "job_id": job_id,
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
        tracking_rows.insert_logged_model_metrics(session, rows)
    return body


def log_metric(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """``runs/log-metric``: the run's ``log_metric``, and the model's when ``model_id`` is given."""
    return _with_models(ctx, workspace, data, [data], run_metrics.log_metric)


def log_batch(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """``runs/log-batch``: the run's ``log_batch``, and each model's points of it."""
    return _with_models(ctx, workspace, data, data.get("metrics"), run_metrics.log_batch)


def metrics_of(session: Session, model_row_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each model's metric points in MLflow's JSON shape, oldest first."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in model_row_ids}
    if not model_row_ids:
        return out
    for m, run, model_id in tracking_rows.logged_model_metric_rows(session, model_row_ids):
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
