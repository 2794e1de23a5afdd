"""MLflow 3 logged models (``/mlflow/logged-models``), what ``mlflow.<flavor>.log_model`` creates.

A model logged from a run keeps its files under that run's artifact root,
``ExperimentRun/dcid.<run>/models/<model id>/artifacts`` (so the job's artifacts include it); one
logged without a run under ``experiments/<id>/models/<model id>/artifacts``, as MLflow's server
lays it out. Both are paths of the workspace's ``workspaceartifactstore``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from shoal.constants import MLFLOW_ARTIFACTS_URI_PREFIX
from shoal.entities.names import generate_job_name
from shoal.errors import NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.tracking import artifacts as mlflow_artifacts
from shoal.services.tracking import logged_model_metrics
from shoal.services.tracking.experiments import experiment
from shoal.services.tracking.run_rows import active_run
from shoal.services.tracking.search_grammar import parse_filter
from shoal.services.tracking.values import (
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    check_key,
    check_value,
    int_arg,
    kv_list,
    list_arg,
    match_number,
    match_text,
    no_separator,
    page_offset,
    run_id_arg,
    str_arg,
)
from shoal.services.workspaces import workspace_id
from shoal.store import runs as run_store
from shoal.store import tracking as rows
from shoal.store.paging import encode_token
from shoal.store.tables import LoggedModelRow

STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
STATUS_NUMBERS = {"1": STATUSES[0], "2": STATUSES[1], "3": STATUSES[2]}
MAX_RESULTS = 1000
ARTIFACTS_PREFIX = MLFLOW_ARTIFACTS_URI_PREFIX


def _kv_map(items: Any, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in kv_list(items):
        key = check_key(item.get("key"), what)
        out[key] = check_value(item.get("value"), MAX_PARAM_VALUE if what == "param" else MAX_TAG_VALUE, what, key)
    return out


def _model_id(data: dict[str, Any]) -> str:
    value = no_separator(str_arg(data, "model_id"), "model_id")
    return value


def logged_model(session: Session, ws_id: int, model_id: str, *, allow_deleted: bool = False) -> LoggedModelRow:
    """A logged model by id, else NotFoundError (a deleted one too, unless ``allow_deleted``)."""
    row = rows.find_logged_model(session, ws_id, model_id)
    if row is None or (row.lifecycle_stage == "deleted" and not allow_deleted):
        raise NotFoundError(f"Logged model with ID '{model_id}' not found.")
    return row


def _body(session: Session, row: LoggedModelRow, metrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    exp = rows.experiment_by_row_id(session, row.experiment_id)
    run = run_store.name_of(session, row.job_id)
    info: dict[str, Any] = {
        "model_id": row.model_id,
        "experiment_id": rows.experiment_id(exp) if exp is not None else rows.DEFAULT_EXPERIMENT_ID,
        "name": row.name,
        "creation_timestamp_ms": row.creation_time,
        "last_updated_timestamp_ms": row.last_update_time,
        "artifact_uri": row.artifact_location,
        "status": row.status,
        "tags": [{"key": k, "value": v} for k, v in (row.tags or {}).items()],
    }
    if row.model_type:
        info["model_type"] = row.model_type
    if run is not None:
        info["source_run_id"] = run
    if row.status_message:
        info["status_message"] = row.status_message
    if metrics is None:
        metrics = logged_model_metrics.metrics_of(session, [row.id])[row.id]
    params = [{"key": k, "value": v} for k, v in (row.params or {}).items()]
    return {"info": info, "data": {"params": params, "metrics": metrics}}


def create_logged_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    params = _kv_map(data.get("params"), "param")
    tags = _kv_map(data.get("tags"), "tag")
    name = str(data.get("name") or generate_job_name())
    model_id = f"m-{uuid.uuid4().hex}"
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        exp = experiment(session, ws_id, str(data.get("experiment_id") or rows.DEFAULT_EXPERIMENT_ID))
        if exp.lifecycle_stage != "active":
            raise UserError(f"The experiment {rows.experiment_id(exp)} must be in the 'active' state.")
        job = None
        if data.get("source_run_id"):
            job = active_run(session, ws_id, run_id_arg({"run_id": data["source_run_id"]}))
            location = f"{ARTIFACTS_PREFIX}{job_state.artifacts_prefix(job.name)}/models/{model_id}/artifacts"
        else:
            location = f"{ARTIFACTS_PREFIX}experiments/{rows.experiment_id(exp)}/models/{model_id}/artifacts"
        stamp = rows.now_ms()
        row = LoggedModelRow(
            workspace_id=ws_id,
            model_id=model_id,
            experiment_id=exp.id,
            job_id=job.id if job is not None else None,
            name=name,
            model_type=str(data.get("model_type") or ""),
            status=STATUSES[0],
            status_message="",
            artifact_location=location,
            lifecycle_stage="active",
            creator_id=(job.user_id if job is not None else "") or "",
            params=params,
            tags=tags,
            creation_time=stamp,
            last_update_time=stamp,
        )
        session.add(row)
        session.flush()
        return {"model": _body(session, row)}


def get_logged_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    allow_deleted = str(data.get("allow_deleted", "")).lower() == "true"
    with ctx.db.read() as session:
        row = logged_model(session, workspace_id(session, workspace), _model_id(data), allow_deleted=allow_deleted)
        return {"model": _body(session, row)}


def finalize_logged_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    status = str(data.get("status") or "")
    status = STATUS_NUMBERS.get(status, status)
    if status not in STATUSES[1:]:
        raise UserError(f"Invalid value {data.get('status')!r} for parameter 'status': use {', '.join(STATUSES[1:])}")
    with ctx.db.write() as session:
        row = logged_model(session, workspace_id(session, workspace), _model_id(data))
        row.status = status
        row.last_update_time = rows.now_ms()
        return {"model": _body(session, row)}


def delete_logged_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = logged_model(session, workspace_id(session, workspace), _model_id(data))
        row.lifecycle_stage = "deleted"
        row.last_update_time = rows.now_ms()
    return {}


def log_logged_model_params(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    params = _kv_map(data.get("params"), "param")
    with ctx.db.write() as session:
        row = logged_model(session, workspace_id(session, workspace), _model_id(data))
        row.params = {**(row.params or {}), **params}
        row.last_update_time = rows.now_ms()
    return {}


def set_logged_model_tags(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    tags = _kv_map(data.get("tags"), "tag")
    with ctx.db.write() as session:
        row = logged_model(session, workspace_id(session, workspace), _model_id(data))
        row.tags = {**(row.tags or {}), **tags}
        row.last_update_time = rows.now_ms()
    return {}


def delete_logged_model_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = str_arg(data, "tag_key")
    with ctx.db.write() as session:
        row = logged_model(session, workspace_id(session, workspace), _model_id(data))
        if key not in (row.tags or {}):
            raise NotFoundError(f"No tag with key '{key}' found for logged model '{row.model_id}'.")
        row.tags = {k: v for k, v in row.tags.items() if k != key}
        row.last_update_time = rows.now_ms()
    return {}


_ATTRS = {
    "name": lambda r, run: r.name,
    "model_id": lambda r, run: r.model_id,
    "model_type": lambda r, run: r.model_type,
    "status": lambda r, run: r.status,
    "source_run_id": lambda r, run: run,
    "creation_timestamp": lambda r, run: r.creation_time,
    "creation_time": lambda r, run: r.creation_time,
    "last_updated_timestamp": lambda r, run: r.last_update_time,
}


def _matches(
    row: LoggedModelRow, run: str | None, clauses: list[Any], metrics: list[dict[str, Any]] | None = None
) -> bool:
    for c in clauses:
        if c.kind == "attribute" and c.key in _ATTRS:
            value = _ATTRS[c.key](row, run)
        elif c.kind == "tag":
            value = (row.tags or {}).get(c.key)
        elif c.kind == "param":
            value = (row.params or {}).get(c.key)
        elif c.kind == "metric":
            number = logged_model_metrics.latest_value(metrics or [], c.key)
            if number is None or not match_number(number, c):  # type: ignore[arg-type]
                return False
            continue
        else:
            raise UserError(f"Invalid filter key '{c.kind}.{c.key}' for logged models")
        if isinstance(value, int) and isinstance(c.value, float):
            ok = match_number(value, c)
        else:
            ok = value is not None and match_text(str(value), c)
        if not ok:
            return False
    return True


def search_logged_models(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = int_arg(data, "max_results", 100) or 100
    if not 1 <= limit <= MAX_RESULTS:
        raise UserError(f"Invalid value {limit} for parameter 'max_results': it must be 1..{MAX_RESULTS}")
    clauses = parse_filter(data.get("filter"))
    offset = page_offset(data.get("page_token"))
    orders = data.get("order_by") or []
    if not isinstance(orders, list):
        raise UserError("Invalid value for 'order_by': expected a list")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        exp_ids = []
        for exp_id in list_arg(data.get("experiment_ids")):
            exp = rows.find_experiment(session, ws_id, exp_id)
            if exp is not None:
                exp_ids.append(exp.id)
        candidates = rows.logged_models_with_runs(session, ws_id, exp_ids)
        # Metric filters need every candidate's metrics; otherwise only the page's are read.
        by_metric = any(c.kind == "metric" for c in clauses)
        metrics = logged_model_metrics.metrics_of(session, [r.id for r, _ in candidates]) if by_metric else {}
        found = [(r, run) for r, run in candidates if _matches(r, run, clauses, metrics.get(r.id))]
        for order in reversed(orders):
            field = str((order or {}).get("field_name") or "")
            if field not in _ATTRS:
                raise UserError(f"Invalid order_by field '{field}' for logged models")
            found.sort(key=lambda pair, f=field: _ATTRS[f](*pair) or "", reverse=not order.get("ascending", True))
        page = found[offset : offset + limit]
        if not by_metric:
            metrics = logged_model_metrics.metrics_of(session, [r.id for r, _ in page])
        body: dict[str, Any] = {"models": [_body(session, r, metrics[r.id]) for r, _ in page]}
    if offset + limit < len(found):
        body["next_page_token"] = encode_token([offset + limit])
    return body


# -- runs ------------------------------------------------------------------------------------


def log_outputs(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """``runs/outputs``: the models a run produced. The link is the model's source run."""
    models = data.get("models") or []
    if not isinstance(models, list):
        raise UserError("Invalid value for 'models': expected a list")
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        run = active_run(session, ws_id, run_id_arg(data))
        for item in models:
            row = logged_model(session, ws_id, _model_id(item or {}))
            if row.job_id is None:
                row.job_id = run.id
    return {}


def log_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """``runs/log-model`` (MLflow 2's record of a model in the run's artifacts): appended to the
    run's ``mlflow.log-model.history`` tag, as MLflow's own store does."""
    raw = str_arg(data, "model_json")
    try:
        model = json.loads(raw)
    except ValueError as exc:
        raise UserError(f"Invalid value for 'model_json': {exc}") from exc
    key = "mlflow.log-model.history"
    with ctx.db.write() as session:
        run = active_run(session, workspace_id(session, workspace), run_id_arg(data))
        tag = rows.find_tag(session, run.id, key)
        history = json.loads(tag.value) if tag is not None else []
        history.append(model)
        rows.set_tags(session, run.id, {key: json.dumps(history)})
    return {}


def _files_root(ctx: ServiceContext, workspace: str, model_id: str) -> tuple[str, str]:
    """The model's artifact URI and its folder in the artifact store."""
    with ctx.db.read() as session:
        row = logged_model(session, workspace_id(session, workspace), no_separator(model_id, "model_id"))
        location = row.artifact_location
    if not location.startswith(ARTIFACTS_PREFIX):
        raise NotFoundError(f"Logged model '{model_id}' has no files in this workspace.")
    return location, location[len(ARTIFACTS_PREFIX) :].strip("/")


def list_logged_model_artifacts(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """``logged-models/{id}/artifacts/directories``: one folder of the model, paths relative to
    the model's root (what the MLflow UI's model page lists)."""
    location, root = _files_root(ctx, workspace, _model_id(data))
    sub = str(data.get("artifact_directory_path") or "").strip("/")
    listed = mlflow_artifacts.list_dir(ctx, workspace, f"{root}/{sub}" if sub else root)
    files = [{**f, "path": f"{sub}/{f['path']}" if sub else f["path"]} for f in listed.get("files", [])]
    body: dict[str, Any] = {"root_uri": location}
    if files:
        body["files"] = files
    return body


def logged_model_artifact(ctx: ServiceContext, workspace: str, model_id: str, path: str | None) -> tuple[Any, str]:
    """The store and path of one file of a logged model (``…/artifacts/files?artifact_file_path=``)."""
    if not path:
        raise UserError('Request must include the "artifact_file_path" query parameter.')
    _, root = _files_root(ctx, workspace, model_id)
    return mlflow_artifacts.locate(ctx, workspace, f"{root}/{path.strip('/')}")
