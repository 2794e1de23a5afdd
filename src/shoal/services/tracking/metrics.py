"""Logging to a run (``runs/log-batch``, ``runs/log-metric``) and reading a metric's history
(``metrics/get-history``). Metric points are checked as MLflow checks them; a batch's metrics,
params and tags are all validated before any is written, then written in one transaction."""

from __future__ import annotations

import math
from typing import Any

from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.tracking.run_rows import active_run_id, run_ref
from shoal.services.tracking.values import (
    MAX_INT64,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    MIN_INT64,
    check_key,
    check_value,
    int_arg,
    json_float,
    kv_list,
    run_id_arg,
    str_arg,
)
from shoal.store import runs as run_store
from shoal.store import tracking as rows
from shoal.store.paging import decode_token, encode_token

MAX_METRICS, MAX_PARAMS_TAGS, MAX_ENTITIES = 1000, 100, 1000
_STEP_TYPES = (int, str, type(None))


def metric_point(m: dict[str, Any]) -> rows.Point:
    """One metric of a request as ``(key, value, timestamp, step, is_nan)``, with MLflow's errors."""
    key = check_key(m.get("key"), "metric")
    raw = m.get("value")
    try:
        value = float(raw) if not isinstance(raw, bool) and raw is not None else None
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise UserError(f"Got invalid value {raw!r} for metric '{key}' (timestamp={m.get('timestamp')}).")
    stamp = m.get("timestamp")
    if stamp in (None, ""):
        raise UserError(f"Missing value for required parameter 'timestamp' of metric '{key}'.")
    try:
        stamp, step = int(stamp), int(m.get("step") or 0)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserError(f"Got invalid timestamp or step for metric '{key}'") from exc
    if not (MIN_INT64 <= stamp <= MAX_INT64 and MIN_INT64 <= step <= MAX_INT64):
        raise UserError(
            f"Got invalid timestamp or step for metric '{key}': both must be integers between -2^63 and 2^63-1"
        )
    nan = math.isnan(value)
    return (key, 0.0 if nan else value, stamp, step, nan)


def metric_points(metrics: list[dict[str, Any]]) -> list[rows.Point]:
    """``metric_point`` for each metric, with a fast lane for the usual shape (a float value, an
    integer or numeric-string timestamp and step, as MLflow's client sends them) that checks each
    distinct key once per batch. Anything else takes ``metric_point``, whose errors are MLflow's."""
    checked: set[str] = set()
    out: list[rows.Point] = []
    for m in metrics:
        key, raw, stamp, step = m.get("key"), m.get("value"), m.get("timestamp"), m.get("step")
        if type(key) is str and type(raw) is float and type(stamp) in (int, str) and type(step) in _STEP_TYPES:
            try:
                point = (key, raw, int(stamp), int(step) if step else 0, False)
                if not (MIN_INT64 <= point[2] <= MAX_INT64 and MIN_INT64 <= point[3] <= MAX_INT64):
                    point = metric_point(m)  # raises MLflow's message
            except ValueError:
                point = metric_point(m)  # raises MLflow's message
            if key not in checked:
                check_key(key, "metric")
                checked.add(key)
            if raw != raw:  # NaN: stored as 0 with the flag
                point = (key, 0.0, point[2], point[3], True)
            out.append(point)
        else:
            out.append(metric_point(m))
    return out


def log_run_data(
    ctx: ServiceContext,
    workspace: str,
    run_id: str,
    metrics: list[dict[str, Any]],
    params: list[dict[str, Any]],
    tags: list[dict[str, Any]],
) -> dict[str, Any]:
    """Validate everything first, then write it all in one transaction."""
    points = metric_points(metrics)
    new_params: dict[str, str] = {}
    for p in params:
        key = check_key(p.get("key"), "param")
        value = check_value(p.get("value"), MAX_PARAM_VALUE, "param", key)
        if key in new_params and new_params[key] != value:
            raise UserError(
                f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure the request contains "
                "only one param value per param key."
            )
        new_params[key] = value
    new_tags = {}
    for t in tags:
        key = check_key(t.get("key"), "tag")
        new_tags[key] = check_value(t.get("value"), MAX_TAG_VALUE, "tag", key)
    with ctx.db.write() as session:
        job_id = active_run_id(session, workspace, run_id)
        if new_params:
            old = rows.existing_params(session, job_id, list(new_params))
            for key, value in new_params.items():
                if key in old and old[key] != value:
                    raise UserError(
                        "Changing param values is not allowed. Params were already logged='"
                        f"[{{'key': '{key}', 'old_value': '{old[key]}', 'new_value': '{value}'}}]' "
                        f"for run ID='{run_id}'."
                    )
            rows.insert_params(session, job_id, {k: v for k, v in new_params.items() if k not in old})
        rows.insert_metrics(session, job_id, points)
        rows.set_tags(session, job_id, new_tags)
        if "mlflow.runName" in new_tags:
            run_store.set_run_name(session, job_id, new_tags["mlflow.runName"])
    return {}


def log_batch(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    metrics, params, tags = kv_list(data.get("metrics")), kv_list(data.get("params")), kv_list(data.get("tags"))
    if len(metrics) > MAX_METRICS:
        raise UserError(
            f"A batch logging request can contain at most {MAX_METRICS} metrics. Got {len(metrics)} metrics."
        )
    if len(params) > MAX_PARAMS_TAGS:
        raise UserError(
            f"A batch logging request can contain at most {MAX_PARAMS_TAGS} params. Got {len(params)} params."
        )
    if len(tags) > MAX_PARAMS_TAGS:
        raise UserError(f"A batch logging request can contain at most {MAX_PARAMS_TAGS} tags. Got {len(tags)} tags.")
    if len(metrics) + len(params) + len(tags) > MAX_ENTITIES:
        raise UserError(
            f"A batch logging request can contain at most {MAX_ENTITIES} metrics, params and tags in total."
        )
    return log_run_data(ctx, workspace, run_id_arg(data), metrics, params, tags)


def log_metric(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return log_run_data(ctx, workspace, run_id_arg(data), [data], [], [])


def get_metric_history(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = str_arg(data, "metric_key")
    limit = int_arg(data, "max_results")
    if limit is not None and limit < 1:
        raise UserError("Invalid value for 'max_results': it must be a positive integer")
    after = None
    if data.get("page_token"):
        # The token is the (step, timestamp, value, is_nan) key of the last point returned.
        try:
            step, stamp, value, nan = decode_token(str(data["page_token"])) or []
            after = (int(step), int(stamp), float(value), bool(nan))
        except Exception as exc:  # noqa: BLE001 - a malformed token is the caller's error
            raise UserError("Invalid page token") from exc
    with ctx.db.read() as session:
        job_id, _ = run_ref(session, workspace, run_id_arg(data))
        points = rows.history_page(session, job_id, key, None if limit is None else limit + 1, after)
    body: dict[str, Any] = {}
    if limit is not None and len(points) > limit:
        points = points[:limit]
        step, stamp, value, nan = points[-1]
        body["next_page_token"] = encode_token([step, stamp, value, int(bool(nan))])
    finite = math.isfinite
    body["metrics"] = [
        {"key": key, "value": "NaN" if nan else (v if finite(v) else json_float(v)), "timestamp": t, "step": s}
        for s, t, v, nan in points
    ]
    return body
