"""The MLflow tracking service: experiments and runs with MLflow's JSON shapes and rules.

A run is a job (run id = job name). Runs created here (``runs/create``) become jobs of type
``mlflow_run`` with no runner; their status follows ``runs/update``. The status of any other job's
run is derived from the job, and a script's ``end_run`` never ends its job early.
"""

from __future__ import annotations

import math
import posixpath
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from shoal.entities.names import generate_job_name
from shoal.entities.status import TERMINAL, JobStatus
from shoal.errors import ConflictError, NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.tracking.search_grammar import Clause, Order, parse_filter, parse_order_by
from shoal.services.workspaces import workspace_id
from shoal.store import tracking as rows
from shoal.store.paging import decode_token, encode_token
from shoal.store.tables import (
    ExperimentRow,
    JobRow,
    LatestMetricRow,
    ParamRow,
    RunInputRow,
    RunTagRow,
    WorkspaceRow,
)

S = JobStatus
MLFLOW_RUN = "mlflow_run"
MAX_METRICS, MAX_PARAMS_TAGS, MAX_ENTITIES = 1000, 100, 1000
MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE, MAX_EXPERIMENT_NAME = 250, 6000, 8000, 500
MAX_RESULTS = 50000
KEY = re.compile(r"^[/\w.\- :]*$")
RUN_STATUS = {
    S.NOT_STARTED: "SCHEDULED",
    S.QUEUED: "SCHEDULED",
    S.PREPARING: "RUNNING",
    S.RUNNING: "RUNNING",
    S.FINALIZING: "RUNNING",
    S.CANCEL_REQUESTED: "RUNNING",
    S.NOT_RESPONDING: "RUNNING",
    S.COMPLETED: "FINISHED",
    S.FAILED: "FAILED",
    S.CANCELED: "KILLED",
}
VIEW_TYPES = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted")}


# -- small helpers --------------------------------------------------------------------------


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _dt(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def json_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _int(data: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"Invalid value {value!r} for parameter '{key}': it must be an integer") from exc


def _str(data: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise UserError(f"Missing value for required parameter '{key}'.")
        return ""
    if not isinstance(value, str):
        raise UserError(f"Invalid value {value!r} for parameter '{key}' supplied: it must be a string")
    return value


def _no_separator(value: str, what: str) -> str:
    # Ids become path segments (ExperimentRun/dcid.<run id>): a separator in one is refused.
    if "/" in value or "\\" in value:
        raise UserError(f"Invalid value {value[:200]!r} for parameter '{what}': it must not contain '/' or '\\'")
    return value


def _run_id(data: dict[str, Any]) -> str:
    return _no_separator(str(data.get("run_id") or data.get("run_uuid") or _str(data, "run_id")), "run_id")


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise UserError(f"Missing value for required parameter 'key' of a {what}.")
    if len(key) > MAX_KEY:
        raise UserError(f"{what.capitalize()} name '{key[:40]}…' exceeds the maximum length of {MAX_KEY}")
    if not KEY.match(key) or key.startswith("/") or posixpath.normpath(key) != key:
        raise UserError(
            f"Invalid {what} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), "
            "periods (.), spaces ( ), colons (:) and slashes (/), and may not be a relative or absolute path."
        )
    return key


def _value(raw: Any, limit: int, what: str, key: str) -> str:
    if raw is None:
        raise UserError(f"Missing value for required parameter 'value' of {what} '{key}'.")
    value = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
    if len(value) > limit:
        raise UserError(f"{what.capitalize()} '{key}' had length {len(value)}, which exceeded length limit of {limit}")
    return value


def _kv(items: Any) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UserError("Invalid value: expected a list of {key, value} objects")
    return items


# -- experiments ----------------------------------------------------------------------------


def _exp_body(row: ExperimentRow) -> dict[str, Any]:
    exp_id = rows.experiment_id(row)
    return {
        "experiment_id": exp_id,
        "name": row.name,
        "artifact_location": row.artifact_location or f"mlflow-artifacts:/experiments/{exp_id}",
        "lifecycle_stage": row.lifecycle_stage,
        "last_update_time": row.last_update_time,
        "creation_time": row.creation_time,
        "tags": [{"key": k, "value": v} for k, v in (row.tags or {}).items()],
    }


def _experiment(session: Session, ws_id: int, exp_id: str) -> ExperimentRow:
    _no_separator(str(exp_id), "experiment_id")
    row = rows.find_experiment(session, ws_id, str(exp_id))
    if row is None and str(exp_id) == rows.DEFAULT_EXPERIMENT_ID:
        row = rows.ensure_default_experiment(session, ws_id)
    if row is None:
        raise NotFoundError(f"No Experiment with id={exp_id} exists")
    return row


def create_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = _str(data, "name")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise UserError(f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME}")
    tags = {str(t["key"]): str(t.get("value", "")) for t in _kv(data.get("tags"))}
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            old = rows.find_experiment_by_name(session, ws_id, name)
            if old is not None:
                state = " (deleted)" if old.lifecycle_stage == "deleted" else ""
                raise ConflictError(f"Experiment(name={name}) already exists{state}.")
            stamp = rows.now_ms()
            row = ExperimentRow(
                workspace_id=ws_id,
                name=name,
                is_default=False,
                artifact_location=data.get("artifact_location") or "",
                lifecycle_stage="active",
                tags=tags,
                creation_time=stamp,
                last_update_time=stamp,
            )
            session.add(row)
            session.flush()
            return {"experiment_id": rows.experiment_id(row)}
    except IntegrityError as exc:
        raise ConflictError(f"Experiment(name={name}) already exists.") from exc


def get_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    exp_id = _no_separator(_str(data, "experiment_id"), "experiment_id")
    with ctx.db.read() as session:
        row = rows.find_experiment(session, workspace_id(session, workspace), exp_id)
    if row is None and exp_id == rows.DEFAULT_EXPERIMENT_ID:
        with ctx.db.write() as session:
            row = _experiment(session, workspace_id(session, workspace), exp_id)
    if row is None:
        raise NotFoundError(f"No Experiment with id={exp_id} exists")
    return {"experiment": _exp_body(row)}


def get_experiment_by_name(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = _str(data, "experiment_name")
    with ctx.db.read() as session:
        row = rows.find_experiment_by_name(session, workspace_id(session, workspace), name)
    if row is None and name == rows.DEFAULT_EXPERIMENT:
        with ctx.db.write() as session:
            row = rows.ensure_default_experiment(session, workspace_id(session, workspace))
    if row is None:
        raise NotFoundError(f"Could not find experiment with name '{name}'")
    return {"experiment": _exp_body(row)}


def search_experiments(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = _int(data, "max_results", 1000) or 1000
    if not 1 <= limit <= MAX_RESULTS:
        raise UserError(f"Invalid value {limit} for parameter 'max_results' supplied: it must be 1..{MAX_RESULTS}")
    stages = _view(data.get("view_type"))
    clauses = parse_filter(data.get("filter"))
    orders = parse_order_by(_list(data.get("order_by")))
    offset = _offset(data.get("page_token"))
    with ctx.db.write() as session:  # write: the Default experiment is created on first sight
        ws_id = workspace_id(session, workspace)
        rows.ensure_default_experiment(session, ws_id)
        query = select(ExperimentRow).where(
            ExperimentRow.workspace_id == ws_id, ExperimentRow.lifecycle_stage.in_(stages)
        )
        columns = {
            "name": ExperimentRow.name,
            "creation_time": ExperimentRow.creation_time,
            "last_update_time": ExperimentRow.last_update_time,
            "experiment_id": ExperimentRow.id,
        }
        for c in clauses:
            if c.kind == "attribute" and c.key in columns:
                value = c.value if c.key == "name" else (int(c.value) if isinstance(c.value, float) else c.value)
                query = query.where(_compare(columns[c.key], c.op, value))
            elif c.kind == "tag":
                # Experiment tags are a JSON map: filter those in Python over the candidates.
                continue
            else:
                raise UserError(f"Invalid attribute key '{c.key}' specified for experiment search")
        order = [(columns.get(o.key), o.ascending) for o in orders]
        if any(col is None for col, _ in order):
            raise UserError(f"Invalid order_by for experiments: {data.get('order_by')}")
        order_cols = [col.asc() if asc else col.desc() for col, asc in order]  # type: ignore[union-attr]
        query = query.order_by(*order_cols, ExperimentRow.creation_time.desc(), ExperimentRow.id.asc())
        found = list(session.scalars(query))
    tag_clauses = [c for c in clauses if c.kind == "tag"]
    found = [r for r in found if all(_match_py((r.tags or {}).get(c.key), c) for c in tag_clauses)]
    page = found[offset : offset + limit]
    body: dict[str, Any] = {"experiments": [_exp_body(r) for r in page]}
    if offset + limit < len(found):
        body["next_page_token"] = encode_token([offset + limit])
    return body


def _match_py(value: str | None, c: Clause) -> bool:
    if value is None:
        return False
    if c.op == "=":
        return value == c.value
    if c.op == "!=":
        return value != c.value
    if c.op in ("LIKE", "ILIKE"):
        pattern = "^" + re.escape(str(c.value)).replace("%", ".*").replace("_", ".") + "$"
        return re.match(pattern, value, re.DOTALL | (re.IGNORECASE if c.op == "ILIKE" else 0)) is not None
    if c.op == "IN":
        return value in c.value
    if c.op == "NOT IN":
        return value not in c.value
    raise UserError(f"Invalid comparator '{c.op}' for tag '{c.key}'")


def update_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    new_name = _str(data, "new_name")
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            row = _experiment(session, ws_id, _str(data, "experiment_id"))
            if row.lifecycle_stage != "active":
                raise UserError("Cannot rename a non-active experiment.")
            if new_name != row.name and rows.find_experiment_by_name(session, ws_id, new_name) is not None:
                raise ConflictError(f"Experiment(name={new_name}) already exists.")
            row.name = new_name
            row.last_update_time = rows.now_ms()
            session.execute(update(JobRow).where(JobRow.experiment_id == row.id).values(experiment_name=new_name))
    except IntegrityError as exc:
        raise ConflictError(f"Experiment(name={new_name}) already exists.") from exc
    return {}


def _set_experiment_stage(ctx: ServiceContext, workspace: str, data: dict[str, Any], stage: str) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = _experiment(session, workspace_id(session, workspace), _str(data, "experiment_id"))
        if row.is_default and stage == "deleted":
            raise UserError("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
        row.lifecycle_stage = stage
        row.last_update_time = rows.now_ms()
        # As MLflow does: the runs of a deleted experiment are deleted with it, and come back with it.
        session.execute(update(JobRow).where(JobRow.experiment_id == row.id).values(lifecycle_stage=stage))
    return {}


def delete_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_experiment_stage(ctx, workspace, data, "deleted")


def restore_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_experiment_stage(ctx, workspace, data, "active")


def set_experiment_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = _check_key(data.get("key"), "tag")
    value = _value(data.get("value"), 20000, "tag", key)
    with ctx.db.write() as session:
        row = _experiment(session, workspace_id(session, workspace), _str(data, "experiment_id"))
        row.tags = {**(row.tags or {}), key: value}
        row.last_update_time = rows.now_ms()
    return {}


def _view(value: Any) -> tuple[str, ...]:
    if value in (None, "", 1, "1"):
        return VIEW_TYPES["ACTIVE_ONLY"]
    if value in (2, "2"):
        return VIEW_TYPES["DELETED_ONLY"]
    if value in (3, "3"):
        return VIEW_TYPES["ALL"]
    if str(value).upper() not in VIEW_TYPES:
        raise UserError(f"Invalid view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL")
    return VIEW_TYPES[str(value).upper()]


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _offset(token: Any) -> int:
    if not token:
        return 0
    try:
        return int((decode_token(str(token)) or [0])[0])
    except Exception as exc:  # noqa: BLE001 - any malformed token is the caller's error
        raise UserError("Invalid page token") from exc


# -- runs: reading --------------------------------------------------------------------------


def _run_row(session: Session, ws_id: int, run_id: str) -> JobRow:
    row = session.scalar(select(JobRow).where(JobRow.workspace_id == ws_id, JobRow.name == run_id))
    if row is None:
        raise NotFoundError(f"Run with id={run_id} not found")
    return row


def _active_run(session: Session, ws_id: int, run_id: str) -> JobRow:
    row = _run_row(session, ws_id, run_id)
    if row.lifecycle_stage != "active":
        raise UserError(f"The run {run_id} must be in the 'active' state. Current state is {row.lifecycle_stage}.")
    return row


def _run_info(row: JobRow, exp_id: str) -> dict[str, Any]:
    start = row.start_time or (row.created_at if row.type == MLFLOW_RUN else None)
    info: dict[str, Any] = {
        "run_id": row.name,
        "run_uuid": row.name,
        "run_name": row.run_name or row.spec.get("display_name") or row.name,
        "experiment_id": exp_id,
        "user_id": row.user_id or "",
        "status": RUN_STATUS.get(JobStatus(row.status), "RUNNING"),
        "artifact_uri": f"mlflow-artifacts:/{job_state.artifacts_prefix(row.name)}",
        "lifecycle_stage": row.lifecycle_stage,
    }
    if start is not None:
        info["start_time"] = _ms(start)
    if row.end_time is not None:
        info["end_time"] = _ms(row.end_time)
    return info


def _exp_ids(session: Session, job_rows: list[JobRow]) -> dict[int | None, str]:
    ids = {r.experiment_id for r in job_rows if r.experiment_id is not None}
    out: dict[int | None, str] = {None: rows.DEFAULT_EXPERIMENT_ID}
    if ids:
        for row in session.scalars(select(ExperimentRow).where(ExperimentRow.id.in_(ids))):
            out[row.id] = rows.experiment_id(row)
    return out


def _runs(session: Session, job_rows: list[JobRow]) -> list[dict[str, Any]]:
    """Full MLflow runs for a page of jobs: four queries whatever the page size."""
    if not job_rows:
        return []
    ids = [r.id for r in job_rows]
    exp_ids = _exp_ids(session, job_rows)
    params, tags, metrics = (
        rows.params_of(session, ids),
        rows.tags_of(session, ids),
        rows.latest_metrics_of(session, ids),
    )
    inputs: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for inp in session.scalars(select(RunInputRow).where(RunInputRow.job_id.in_(ids)).order_by(RunInputRow.id)):
        inputs[inp.job_id].append({"tags": inp.tags or [], "dataset": inp.dataset})
    out = []
    for r in job_rows:
        run_tags = dict(tags[r.id])
        info = _run_info(r, exp_ids.get(r.experiment_id, rows.DEFAULT_EXPERIMENT_ID))
        run_tags.setdefault("mlflow.runName", info["run_name"])
        if r.parent_job_name:
            run_tags.setdefault("mlflow.parentRunId", r.parent_job_name)
        data = {
            "metrics": [
                {"key": m.key, "value": json_float(rows.metric_value(m)), "timestamp": m.timestamp, "step": m.step}
                for m in metrics[r.id]
            ],
            "params": [{"key": k, "value": v} for k, v in params[r.id].items()],
            "tags": [{"key": k, "value": v} for k, v in run_tags.items()],
        }
        out.append({"info": info, "data": data, "inputs": {"dataset_inputs": inputs[r.id]}})
    return out


def get_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = _run_row(session, workspace_id(session, workspace), _run_id(data))
        return {"run": _runs(session, [row])[0]}


# -- runs: lifecycle ------------------------------------------------------------------------


def create_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    tags = {str(t["key"]): _value(t.get("value"), MAX_TAG_VALUE, "tag", str(t["key"])) for t in _kv(data.get("tags"))}
    run_name = data.get("run_name") or tags.get("mlflow.runName") or generate_job_name()
    tags["mlflow.runName"] = run_name
    user_id = data.get("user_id") or tags.get("mlflow.user") or ""
    start = _dt(data["start_time"]) if data.get("start_time") not in (None, "") else job_state.now()
    name = uuid.uuid4().hex
    parent = tags.get("mlflow.parentRunId")
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        exp = _experiment(session, ws_id, str(data.get("experiment_id") or rows.DEFAULT_EXPERIMENT_ID))
        if exp.lifecycle_stage != "active":
            raise UserError(f"The experiment {rows.experiment_id(exp)} must be in the 'active' state.")
        spec: dict[str, Any] = {"type": MLFLOW_RUN, "display_name": run_name}
        if parent:
            spec["parent_job_name"] = parent
        row = JobRow(
            workspace_id=ws_id,
            name=name,
            type=MLFLOW_RUN,
            status=str(S.RUNNING),
            compute="local",
            experiment_name=exp.name,
            experiment_id=exp.id,
            parent_job_name=parent,
            lifecycle_stage="active",
            run_name=run_name,
            user_id=user_id,
            spec=spec,
            resolved={
                "artifacts": {"datastore": job_state.ARTIFACTS_DATASTORE, "path": job_state.artifacts_prefix(name)}
            },
            status_times={str(S.RUNNING): start.isoformat()},
            start_time=start,
            attempt=0,
        )
        session.add(row)
        session.flush()
        rows.set_tags(session, row.id, tags)
        return {"run": _runs(session, [row])[0]}


TERMINAL_TARGET = {"FINISHED": S.COMPLETED, "FAILED": S.FAILED, "KILLED": S.CANCELED}


def update_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    status = data.get("status")
    if status is not None and str(status) not in (
        "RUNNING",
        "SCHEDULED",
        "FINISHED",
        "FAILED",
        "KILLED",
        "1",
        "2",
        "3",
        "4",
        "5",
    ):
        raise UserError(f"Invalid run status {status!r}")
    status = {"1": "RUNNING", "2": "SCHEDULED", "3": "FINISHED", "4": "FAILED", "5": "KILLED"}.get(str(status), status)
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        row = _active_run(session, ws_id, _run_id(data))
        if data.get("run_name"):
            row.run_name = str(data["run_name"])
            row.spec = {**row.spec, "display_name": row.run_name}
            rows.set_tags(session, row.id, {"mlflow.runName": row.run_name})
        # Only runs created through MLflow follow the client; a job's own status is the runner's.
        if row.type == MLFLOW_RUN and status in TERMINAL_TARGET and row.status not in TERMINAL:
            target = TERMINAL_TARGET[status]
            if target == S.CANCELED and row.status != S.CANCEL_REQUESTED:
                job_state.transition(row, S.CANCEL_REQUESTED)
            job_state.transition(row, target)
            if data.get("end_time") not in (None, ""):
                row.end_time = _dt(data["end_time"])
        row.updated_at = job_state.now()
        exp_id = _exp_ids(session, [row]).get(row.experiment_id, rows.DEFAULT_EXPERIMENT_ID)
        return {"run_info": _run_info(row, exp_id)}


def _set_run_stage(ctx: ServiceContext, workspace: str, data: dict[str, Any], stage: str) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = _run_row(session, workspace_id(session, workspace), _run_id(data))
        row.lifecycle_stage = stage
        row.updated_at = job_state.now()
    return {}


def delete_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_run_stage(ctx, workspace, data, "deleted")


def restore_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_run_stage(ctx, workspace, data, "active")


# -- runs: logging --------------------------------------------------------------------------


def _metric_point(m: dict[str, Any]) -> rows.Point:
    key = _check_key(m.get("key"), "metric")
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
    except (TypeError, ValueError) as exc:
        raise UserError(f"Got invalid timestamp or step for metric '{key}'") from exc
    nan = math.isnan(value)
    return (key, 0.0 if nan else value, stamp, step, nan)


def _metric_points(metrics: list[dict[str, Any]]) -> list[rows.Point]:
    """``_metric_point`` for each metric, with a fast lane for the usual shape (a float value, an
    integer or numeric-string timestamp and step, as MLflow's client sends them) that checks each
    distinct key once per batch. Anything else takes ``_metric_point``, whose errors are MLflow's."""
    checked: set[str] = set()
    out: list[rows.Point] = []
    for m in metrics:
        key, raw, stamp, step = m.get("key"), m.get("value"), m.get("timestamp"), m.get("step")
        if type(key) is str and type(raw) is float and type(stamp) in (int, str) and type(step) in _STEP_TYPES:
            try:
                point = (key, raw, int(stamp), int(step) if step else 0, False)
            except ValueError:
                point = _metric_point(m)  # raises MLflow's message
            if key not in checked:
                _check_key(key, "metric")
                checked.add(key)
            if raw != raw:  # NaN: stored as 0 with the flag
                point = (key, 0.0, point[2], point[3], True)
            out.append(point)
        else:
            out.append(_metric_point(m))
    return out


_STEP_TYPES = (int, str, type(None))
# The run a write goes to, in one query: its id and whether it is active.
_RUN_REF = (
    select(JobRow.id, JobRow.lifecycle_stage)
    .join(WorkspaceRow, WorkspaceRow.id == JobRow.workspace_id)
    .where(WorkspaceRow.name == bindparam("workspace"), JobRow.name == bindparam("run"))
)


def _run_ref(session: Session, workspace: str, run_id: str) -> tuple[int, str]:
    """A run's job id and lifecycle stage in one query, without loading the job; the errors of
    ``_run_row``."""
    found = session.execute(_RUN_REF, {"workspace": workspace, "run": run_id}).first()
    if found is None:
        workspace_id(session, workspace)  # a missing workspace is named as such
        raise NotFoundError(f"Run with id={run_id} not found")
    return int(found[0]), str(found[1])


def _active_run_id(session: Session, workspace: str, run_id: str) -> int:
    """``_active_run(...).id``, in one query."""
    job_id, stage = _run_ref(session, workspace, run_id)
    if stage != "active":
        raise UserError(f"The run {run_id} must be in the 'active' state. Current state is {stage}.")
    return job_id


def _log(
    ctx: ServiceContext,
    workspace: str,
    run_id: str,
    metrics: list[dict[str, Any]],
    params: list[dict[str, Any]],
    tags: list[dict[str, Any]],
) -> dict[str, Any]:
    """Validate everything first, then write it all in one transaction."""
    points = _metric_points(metrics)
    new_params: dict[str, str] = {}
    for p in params:
        key = _check_key(p.get("key"), "param")
        value = _value(p.get("value"), MAX_PARAM_VALUE, "param", key)
        if key in new_params and new_params[key] != value:
            raise UserError(
                f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure the request contains "
                "only one param value per param key."
            )
        new_params[key] = value
    new_tags = {}
    for t in tags:
        key = _check_key(t.get("key"), "tag")
        new_tags[key] = _value(t.get("value"), MAX_TAG_VALUE, "tag", key)
    with ctx.db.write() as session:
        job_id = _active_run_id(session, workspace, run_id)
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
            session.execute(update(JobRow).where(JobRow.id == job_id).values(run_name=new_tags["mlflow.runName"]))
    return {}


def log_batch(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    metrics, params, tags = _kv(data.get("metrics")), _kv(data.get("params")), _kv(data.get("tags"))
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
    return _log(ctx, workspace, _run_id(data), metrics, params, tags)


def log_metric(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _log(ctx, workspace, _run_id(data), [data], [], [])


def log_param(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _log(ctx, workspace, _run_id(data), [], [data], [])


def set_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _log(ctx, workspace, _run_id(data), [], [], [data])


def delete_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = _str(data, "key")
    with ctx.db.write() as session:
        row = _active_run(session, workspace_id(session, workspace), _run_id(data))
        tag = session.get(RunTagRow, (row.id, key))
        if tag is None:
            raise NotFoundError(f"No tag with name: {key} in run with id {row.name}")
        session.delete(tag)
    return {}


def log_inputs(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list):
        raise UserError("Invalid value for 'datasets': expected a list")
    entries = []
    for item in datasets:
        dataset = (item or {}).get("dataset") or {}
        if not isinstance(dataset, dict) or not dataset.get("name") or not dataset.get("digest"):
            raise UserError("Each dataset input needs a dataset with a name and a digest")
        tags = _kv(item.get("tags"))
        context = next((str(t.get("value")) for t in tags if t.get("key") == "mlflow.data.context"), "")
        entries.append(
            {
                "name": str(dataset["name"])[:500],
                "digest": str(dataset["digest"])[:64],
                "context": context[:255],
                "dataset": dataset,
                "tags": tags,
            }
        )
    with ctx.db.write() as session:
        row = _active_run(session, workspace_id(session, workspace), _run_id(data))
        for e in entries:
            stmt = rows._insert(session, RunInputRow).values(job_id=row.id, **e).on_conflict_do_nothing()
            session.execute(stmt)
    return {}


# -- metric history -------------------------------------------------------------------------


def get_metric_history(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = _str(data, "metric_key")
    limit = _int(data, "max_results")
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
        job_id, _ = _run_ref(session, workspace, _run_id(data))
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


# -- search ---------------------------------------------------------------------------------

ATTR_COLUMNS = ("run_id", "run_name", "status", "user_id", "start_time", "end_time", "lifecycle_stage", "created")


def _attr(key: str) -> Any:
    if key == "run_id":
        return JobRow.name
    if key == "run_name":
        return func.coalesce(JobRow.run_name, JobRow.name)
    if key == "user_id":
        return func.coalesce(JobRow.user_id, "")
    if key in ("start_time", "created"):
        return func.coalesce(JobRow.start_time, JobRow.created_at)
    if key == "end_time":
        return JobRow.end_time
    if key == "lifecycle_stage":
        return JobRow.lifecycle_stage
    raise UserError(f"Invalid attribute key '{key}' specified. Valid keys are {list(ATTR_COLUMNS)}")


def _compare(col: Any, op: str, value: Any) -> Any:
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


def _statuses(mlflow_status: str) -> list[str]:
    return [str(s) for s, m in RUN_STATUS.items() if m == mlflow_status]


def _condition(c: Clause) -> Any:
    if c.kind == "metric":
        return exists().where(
            LatestMetricRow.job_id == JobRow.id,
            LatestMetricRow.key == c.key,
            LatestMetricRow.is_nan.is_(False),
            _compare(LatestMetricRow.value, c.op, c.value),
        )
    if c.kind == "param":
        return exists().where(
            ParamRow.job_id == JobRow.id, ParamRow.key == c.key, _compare(ParamRow.value, c.op, c.value)
        )
    if c.kind == "tag":
        if c.key == "mlflow.runName":
            return _compare(_attr("run_name"), c.op, c.value)
        return exists().where(
            RunTagRow.job_id == JobRow.id, RunTagRow.key == c.key, _compare(RunTagRow.value, c.op, c.value)
        )
    if c.kind == "attribute":
        if c.key == "status":
            values = c.value if isinstance(c.value, tuple) else (c.value,)
            wanted = [s for v in values for s in _statuses(str(v).upper())]
            if c.op in ("=", "IN", "LIKE", "ILIKE"):
                return JobRow.status.in_(wanted)
            if c.op in ("!=", "NOT IN"):
                return JobRow.status.not_in(wanted)
            raise UserError(f"Invalid comparator '{c.op}' for attribute 'status'")
        if c.key in ("start_time", "end_time", "created"):
            if not isinstance(c.value, float):
                raise UserError(f"Expected a numeric value for attribute '{c.key}'. Got {c.value!r}")
            return _compare(_attr(c.key), c.op, _dt(c.value))
        if isinstance(c.value, float):
            raise UserError(f"Expected a quoted string value for attribute '{c.key}'. Got {c.value!r}")
        return _compare(_attr(c.key), c.op, c.value)
    raise UserError(f"Searching runs by {c.kind} is not supported")


def _order_column(query: Any, o: Order, n: int, *, present: Any = None) -> tuple[Any, Any]:
    """The query joined to what ``o`` orders by, and the column. ``present``: the filter's clauses
    on this metric, which every run found must then have: they go on an inner join, which lets
    the database walk the metric's values in index order instead of sorting every run."""
    if o.kind == "metric":
        lm = aliased(LatestMetricRow, name=f"o{n}")
        if present is None:
            return query.outerjoin(lm, and_(lm.job_id == JobRow.id, lm.key == o.key)), lm.value
        query = query.join(lm, and_(lm.job_id == JobRow.id, lm.key == o.key))
        for c in present:  # the filter's EXISTS on this metric, said on the joined row instead
            query = query.where(lm.is_nan.is_(False), _compare(lm.value, c.op, c.value))
        return query, lm.value
    if o.kind in ("param", "tag"):
        table = ParamRow if o.kind == "param" else RunTagRow
        al = aliased(table, name=f"o{n}")
        query = query.outerjoin(al, and_(al.job_id == JobRow.id, al.key == o.key))
        return query, al.value
    if o.kind == "attribute":
        if o.key == "status":
            return query, JobRow.status
        return query, _attr(o.key)
    raise UserError(f"Invalid order_by entity type '{o.kind}'")


def search_runs(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = _int(data, "max_results", 1000) or 1000
    if not 1 <= limit <= MAX_RESULTS:
        raise UserError(f"Invalid value {limit} for parameter 'max_results' supplied: it must be at most {MAX_RESULTS}")
    stages = _view(data.get("run_view_type"))
    clauses = parse_filter(data.get("filter"))
    orders = parse_order_by(_list(data.get("order_by")))
    offset = _offset(data.get("page_token"))
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        exp_ids: list[int | None] = []
        for exp_id in _list(data.get("experiment_ids")):
            exp = rows.find_experiment(session, ws_id, exp_id)
            if exp is not None:
                exp_ids.append(exp.id)
        # Ids first, whole rows for the page only: sorting 100,000 runs with their JSON columns cost
        # several times more than sorting their ids.
        query = select(JobRow.id).where(JobRow.workspace_id == ws_id, JobRow.lifecycle_stage.in_(stages))
        query = query.where(JobRow.experiment_id.in_(exp_ids))
        # A metric both filtered on and ordered by is joined once, with its clauses on the join.
        on_join: dict[str, list[Clause]] = {}
        for o in orders:
            if o.kind == "metric" and o.key not in on_join:
                named = [c for c in clauses if c.kind == "metric" and c.key == o.key]
                if named:
                    on_join[o.key] = named
        for c in clauses:
            if not (c.kind == "metric" and c.key in on_join):
                query = query.where(_condition(c))
        order_cols = []
        for n, o in enumerate(orders):
            present = on_join.pop(o.key, None) if o.kind == "metric" else None
            query, col = _order_column(query, o, n, present=present)
            if present is not None:  # never NULL: plain order, which an index walked either way gives
                order_cols.append(col.asc() if o.ascending else col.desc())
            else:
                order_cols.append(col.asc().nulls_last() if o.ascending else col.desc().nulls_last())
        if not any(o.kind == "attribute" and o.key in ("start_time", "created") for o in orders):
            order_cols.append(_attr("start_time").desc())
        query = query.order_by(*order_cols, JobRow.id.desc()).offset(offset).limit(limit + 1)
        ids = list(session.scalars(query))
        by_id: dict[int, JobRow] = {}
        for start in range(0, min(len(ids), limit), 10_000):  # SQLite caps bound parameters at 32,766
            chunk = ids[start : min(start + 10_000, limit)]
            by_id.update((r.id, r) for r in session.scalars(select(JobRow).where(JobRow.id.in_(chunk))))
        found = [by_id[i] for i in ids[:limit]]
        body: dict[str, Any] = {"runs": _runs(session, found)}
    if len(ids) > limit:
        body["next_page_token"] = encode_token([offset + limit])
    return body
