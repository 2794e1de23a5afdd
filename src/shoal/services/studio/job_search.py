"""The studio's jobs page: a workspace's jobs as table rows, filtered, ordered and keyset-paged
(the SQL is ``store/studio_jobs.py``), with the metric and param columns a user picked."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

from shoal.entities.status import JobStatus
from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.tracking.run_search import JOB_STATES
from shoal.services.tracking.search_grammar import parse_filter, parse_order_by
from shoal.services.workspaces import workspace_id
from shoal.store import runs as run_store
from shoal.store import studio_jobs
from shoal.store import tracking as tracking_rows
from shoal.store.paging import decode_token, encode_token
from shoal.store.tables import JobRow

DEFAULT_PAGE = 50
MAX_PAGE = 500
COUNT_CAP = 10_000
MAX_COLUMNS = 50
MAX_TAG_FILTERS = 20
COLUMN_SAMPLE = 500
# Orders whose first page shows the largest values first unless told otherwise.
DESCENDING_BY_DEFAULT = {"created_at", "start_time", "end_time", "duration"}
ORDER_ALIASES = {"created": "created_at", "creation_time": "created_at", "start": "start_time", "end": "end_time"}


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def _order(text: str | None) -> tuple[str, str, bool]:
    """``order_by`` as (kind, key, ascending): an attribute name, or ``metrics.k``/``params.k``/``tags.k``."""
    raw = (text or "created_at").strip()
    words = raw.rsplit(None, 1)
    direction = words[1].upper() if len(words) == 2 and words[1].upper() in ("ASC", "DESC") else None
    body = words[0] if direction else raw
    (parsed,) = parse_order_by([body])
    kind, key = parsed.kind, parsed.key
    if kind == "attribute":
        key = ORDER_ALIASES.get(key, key)
        if key not in studio_jobs.ATTRIBUTE_ORDERS:
            raise UserError(
                f"order_by {raw!r}: unknown column {key!r}; use one of {', '.join(studio_jobs.ATTRIBUTE_ORDERS)}, "
                "or metrics.<key>, params.<key>, tags.<key>"
            )
    elif kind not in ("metric", "param", "tag"):
        raise UserError(f"order_by {raw!r}: cannot order by a {kind}")
    ascending = direction == "ASC" if direction else not (kind == "metric" or key in DESCENDING_BY_DEFAULT)
    return kind, key, ascending


def _columns(text: str | None) -> tuple[list[str], list[str]]:
    metrics: list[str] = []
    params: list[str] = []
    for item in [c.strip() for c in (text or "").split(",") if c.strip()][: MAX_COLUMNS + 1]:
        kind, _, key = item.partition(".")
        if kind in ("metrics", "metric") and key:
            metrics.append(key)
        elif kind in ("params", "param") and key:
            params.append(key)
        else:
            raise UserError(f"columns: {item!r} is neither metrics.<key> nor params.<key>")
    if len(metrics) + len(params) > MAX_COLUMNS:
        raise UserError(f"columns: at most {MAX_COLUMNS}")
    return metrics, params


def _statuses(text: str | None) -> list[str]:
    known = {s.value.lower(): s.value for s in JobStatus}
    out = []
    for item in [s.strip() for s in (text or "").split(",") if s.strip()]:
        if item.lower() not in known:
            raise UserError(f"status {item!r} is not a job status; use one of {', '.join(s.value for s in JobStatus)}")
        out.append(known[item.lower()])
    return out


def _tags(items: list[str]) -> list[tuple[str, str | None]]:
    if len(items) > MAX_TAG_FILTERS:
        raise UserError(f"at most {MAX_TAG_FILTERS} tag filters")
    out: list[tuple[str, str | None]] = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key.strip():
            raise UserError(f"tag filter {item!r}: give key or key=value")
        out.append((key.strip(), value if eq else None))
    return out


def job_filter(
    session: Any,
    workspace: str,
    *,
    experiment: str | None,
    status: str | None,
    tags: list[str],
    filter_text: str | None,
    parent: str | None,
    archived: str | None,
) -> studio_jobs.JobFilter:
    ws_id = workspace_id(session, workspace)
    f = studio_jobs.JobFilter(ws_id, job_states=JOB_STATES, parent=parent or None)
    if experiment:
        exp = tracking_rows.find_experiment_by_name(session, ws_id, experiment)
        if exp is None:
            f.no_experiment = True
        else:
            f.experiment_id = exp.id
    f.statuses = _statuses(status)
    f.tags = _tags(tags)
    f.clauses = parse_filter(filter_text)
    modes = {None: False, "": False, "false": False, "true": True, "all": None}
    if archived not in modes:
        raise UserError(f"archived must be false, true or all, got {archived!r}")
    f.archived = modes[archived]
    return f


def _signature(kind: str, key: str, ascending: bool) -> str:
    return hashlib.sha256(f"{kind}\0{key}\0{ascending}".encode()).hexdigest()[:8]


def search(
    ctx: ServiceContext,
    workspace: str,
    *,
    experiment: str | None = None,
    status: str | None = None,
    tags: list[str] | None = None,
    filter_text: str | None = None,
    parent: str | None = None,
    archived: str | None = None,
    order_by: str | None = None,
    columns: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    limit = DEFAULT_PAGE if max_results is None else max_results
    if not 1 <= limit <= MAX_PAGE:
        raise UserError(f"max_results must be from 1 to {MAX_PAGE}, got {limit}")
    kind, key, ascending = _order(order_by)
    metric_cols, param_cols = _columns(columns)
    sig = _signature(kind, key, ascending)
    after: tuple[Any, int] | None = None
    token = decode_token(page_token)
    if token is not None:
        if len(token) != 3 or token[0] != sig or not isinstance(token[2], int):
            raise UserError("page_token belongs to another order_by; start again without it")
        after = (token[1], token[2])
    with ctx.db.read() as session:
        f = job_filter(
            session,
            workspace,
            experiment=experiment,
            status=status,
            tags=tags or [],
            filter_text=filter_text,
            parent=parent,
            archived=archived,
        )
        found = studio_jobs.search(session, f, kind, key, ascending, after, limit + 1)
        # Counted where indexes answer (workspace, experiment, status): a filter expression or a
        # tag would make the count read every job, so then only a last page gives the total.
        total: int | None = None
        if not f.clauses and not f.tags:
            total = studio_jobs.count_upto(session, f, COUNT_CAP + 1)
        elif after is None and len(found) <= limit:
            total = len(found)
        page = found[:limit]
        ids = [i for i, _ in page]
        rows = run_store.by_ids(session, ids)
        metrics = tracking_rows.latest_metrics_of(session, ids) if metric_cols else {}
        params = tracking_rows.params_of(session, ids) if param_cols else {}
        run_tags = tracking_rows.tags_of(session, ids)
        jobs = [
            _row(rows[i], metrics.get(i, []), params.get(i, {}), run_tags.get(i, {}), metric_cols, param_cols)
            for i in ids
        ]
    body: dict[str, Any] = {"jobs": jobs, "next_page_token": None}
    if total is not None:
        body["total"] = min(total, COUNT_CAP)
        body["total_is_lower_bound"] = total > COUNT_CAP
    if len(found) > limit:
        last_id, last_value = page[-1]
        if isinstance(last_value, datetime):
            last_value = last_value.isoformat()
        body["next_page_token"] = encode_token([sig, last_value, last_id])
    return body


def _row(
    row: JobRow,
    latest: list[Any],
    params: dict[str, str],
    run_tags: dict[str, str],
    metric_cols: list[str],
    param_cols: list[str],
) -> dict[str, Any]:
    spec = row.spec or {}
    tags = {k: v for k, v in run_tags.items() if not k.startswith("mlflow.")}
    tags.update({str(k): str(v) for k, v in (spec.get("tags") or {}).items()})
    start, end = _ms(row.start_time), _ms(row.end_time)
    wanted = set(metric_cols)
    values = {}
    for m in latest:
        if m.key in wanted:
            values[m.key] = None if m.is_nan or not math.isfinite(m.value) else m.value
    return {
        "name": row.name,
        "display_name": spec.get("display_name") or row.run_name or row.name,
        "experiment_name": row.experiment_name,
        "status": row.status,
        "type": row.type,
        "compute": spec.get("compute") or row.compute or "local",
        "parent_job_name": row.parent_job_name,
        "archived": bool(row.archived),
        "created_at": _ms(row.created_at),
        "start_time": start,
        "end_time": end,
        "duration_ms": end - start if start is not None and end is not None else None,
        "user": row.user_id,
        "tags": tags,
        "metrics": values,
        "params": {k: params[k] for k in param_cols if k in params},
    }


def column_keys(ctx: ServiceContext, workspace: str, experiment: str | None) -> dict[str, list[str]]:
    """The metric, param and tag keys of the newest jobs (for the column and filter pickers)."""
    with ctx.db.read() as session:
        f = job_filter(
            session,
            workspace,
            experiment=experiment,
            status=None,
            tags=[],
            filter_text=None,
            parent=None,
            archived="all",
        )
        ids = studio_jobs.newest_ids(session, f, COLUMN_SAMPLE)
        metrics, params, tag_keys = studio_jobs.keys_of(session, ids)
        spec_tags = {str(k) for tags in studio_jobs.spec_tags_of(session, ids) for k in tags}
    tags = sorted({k for k in tag_keys if not k.startswith("mlflow.")} | spec_tags)
    return {"metrics": metrics, "params": params, "tags": tags}


def experiments(ctx: ServiceContext, workspace: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        found = studio_jobs.experiments_with_counts(session, workspace_id(session, workspace))
    return {"experiments": [{"id": i, "name": n, "job_count": c} for i, n, c in found]}


def experiment_name(ctx: ServiceContext, workspace: str, exp_id: str) -> str | None:
    """The name of an experiment by its MLflow id (MLflow's "View experiment" links carry the id)."""
    with ctx.db.read() as session:
        row = tracking_rows.find_experiment(session, workspace_id(session, workspace), exp_id)
        return row.name if row is not None else None
