"""MLflow runs (``runs/…``): create, get, update, delete and restore; params, tags and dataset
inputs. Metrics are in ``metrics.py``, search in ``run_search.py``.

A run is a job (run id = job name). Runs created here (``runs/create``) become jobs of type
``mlflow_run`` with no runner; their status follows ``runs/update``. The status of any other job's
run is derived from the job, and a script's ``end_run`` never ends its job early.
"""

from __future__ import annotations

import uuid
from typing import Any

from shoal.entities.names import generate_job_name
from shoal.entities.status import TERMINAL, JobStatus
from shoal.errors import NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.tracking.experiments import experiment
from shoal.services.tracking.metrics import log_run_data
from shoal.services.tracking.run_rows import MLFLOW_RUN, active_run, experiment_ids, run_info, run_row, runs_body
from shoal.services.tracking.values import MAX_TAG_VALUE, check_value, dt, kv_list, run_id_arg, str_arg
from shoal.services.workspaces import workspace_id
from shoal.store import tracking as rows
from shoal.store.tables import JobRow

S = JobStatus
TERMINAL_TARGET = {"FINISHED": S.COMPLETED, "FAILED": S.FAILED, "KILLED": S.CANCELED}


def get_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = run_row(session, workspace_id(session, workspace), run_id_arg(data))
        return {"run": runs_body(session, [row])[0]}


def create_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    tags = {
        str(t["key"]): check_value(t.get("value"), MAX_TAG_VALUE, "tag", str(t["key"]))
        for t in kv_list(data.get("tags"))
    }
    run_name = data.get("run_name") or tags.get("mlflow.runName") or generate_job_name()
    tags["mlflow.runName"] = run_name
    user_id = data.get("user_id") or tags.get("mlflow.user") or ""
    start = dt(data["start_time"]) if data.get("start_time") not in (None, "") else job_state.now()
    name = uuid.uuid4().hex
    parent = tags.get("mlflow.parentRunId")
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        exp = experiment(session, ws_id, str(data.get("experiment_id") or rows.DEFAULT_EXPERIMENT_ID))
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
        return {"run": runs_body(session, [row])[0]}


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
        row = active_run(session, ws_id, run_id_arg(data))
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
                row.end_time = dt(data["end_time"])
        row.updated_at = job_state.now()
        exp_id = experiment_ids(session, [row]).get(row.experiment_id, rows.DEFAULT_EXPERIMENT_ID)
        return {"run_info": run_info(row, exp_id)}


def _set_run_stage(ctx: ServiceContext, workspace: str, data: dict[str, Any], stage: str) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = run_row(session, workspace_id(session, workspace), run_id_arg(data))
        row.lifecycle_stage = stage
        row.updated_at = job_state.now()
    return {}


def delete_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_run_stage(ctx, workspace, data, "deleted")


def restore_run(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_run_stage(ctx, workspace, data, "active")


# -- params, tags, inputs -------------------------------------------------------------------


def log_param(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return log_run_data(ctx, workspace, run_id_arg(data), [], [data], [])


def set_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return log_run_data(ctx, workspace, run_id_arg(data), [], [], [data])


def delete_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = str_arg(data, "key")
    with ctx.db.write() as session:
        row = active_run(session, workspace_id(session, workspace), run_id_arg(data))
        tag = rows.find_tag(session, row.id, key)
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
        tags = kv_list(item.get("tags"))
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
        row = active_run(session, workspace_id(session, workspace), run_id_arg(data))
        rows.add_inputs(session, row.id, entries)
    return {}
