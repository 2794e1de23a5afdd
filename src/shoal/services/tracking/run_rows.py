"""Runs as the tracking services find and show them: a run is a job (run id = job name), found
by id with MLflow's errors and shown in MLflow's JSON shape (:func:`runs_body`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shoal.constants import PROVENANCE_PROPERTY_PREFIXES
from shoal.entities.status import JobStatus
from shoal.errors import NotFoundError, UserError
from shoal.services.jobs import state as job_state
from shoal.services.tracking.values import json_float, ms
from shoal.services.workspaces import workspace_id
from shoal.store import jobs as job_rows
from shoal.store import runs as run_store
from shoal.store import tracking as rows
from shoal.store.tables import JobRow

S = JobStatus
MLFLOW_RUN = "mlflow_run"
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


def run_row(session: Session, ws_id: int, run_id: str) -> JobRow:
    row = job_rows.find(session, ws_id, run_id)
    if row is None:
        raise NotFoundError(f"Run with id={run_id} not found")
    return row


def active_run(session: Session, ws_id: int, run_id: str) -> JobRow:
    row = run_row(session, ws_id, run_id)
    if row.lifecycle_stage != "active":
        raise UserError(f"The run {run_id} must be in the 'active' state. Current state is {row.lifecycle_stage}.")
    return row


def run_ref(session: Session, workspace: str, run_id: str) -> tuple[int, str]:
    """A run's job id and lifecycle stage in one query, without loading the job; the errors of
    :func:`run_row`."""
    found = run_store.ref(session, workspace, run_id)
    if found is None:
        workspace_id(session, workspace)  # a missing workspace is named as such
        raise NotFoundError(f"Run with id={run_id} not found")
    return found


def active_run_id(session: Session, workspace: str, run_id: str) -> int:
    """``active_run(...).id``, in one query."""
    job_id, stage = run_ref(session, workspace, run_id)
    if stage != "active":
        raise UserError(f"The run {run_id} must be in the 'active' state. Current state is {stage}.")
    return job_id


def run_info(row: JobRow, exp_id: str) -> dict[str, Any]:
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
        info["start_time"] = ms(start)
    if row.end_time is not None:
        info["end_time"] = ms(row.end_time)
    return info


def property_tags(row: JobRow) -> dict[str, str]:
    """The job's properties that are MLflow tags too (:data:`~shoal.constants.PROVENANCE_PROPERTY_PREFIXES`)."""
    props = (row.spec or {}).get("properties") or {}
    return {k: str(v) for k, v in props.items() if isinstance(k, str) and k.startswith(PROVENANCE_PROPERTY_PREFIXES)}


def experiment_ids(session: Session, job_rows_: list[JobRow]) -> dict[int | None, str]:
    """The MLflow experiment id of each experiment row id of these runs (None: the Default's)."""
    ids = {r.experiment_id for r in job_rows_ if r.experiment_id is not None}
    out: dict[int | None, str] = {None: rows.DEFAULT_EXPERIMENT_ID}
    for row in rows.experiments_by_id(session, ids):
        out[row.id] = rows.experiment_id(row)
    return out


def runs_body(session: Session, job_rows_: list[JobRow]) -> list[dict[str, Any]]:
    """Full MLflow runs for a page of jobs: four queries whatever the page size."""
    if not job_rows_:
        return []
    ids = [r.id for r in job_rows_]
    exp_ids = experiment_ids(session, job_rows_)
    params, tags, metrics = (
        rows.params_of(session, ids),
        rows.tags_of(session, ids),
        rows.latest_metrics_of(session, ids),
    )
    inputs = {
        job_id: [{"tags": inp.tags or [], "dataset": inp.dataset} for inp in found]
        for job_id, found in rows.inputs_of(session, ids).items()
    }
    out = []
    for r in job_rows_:
        run_tags = dict(tags[r.id])
        info = run_info(r, exp_ids.get(r.experiment_id, rows.DEFAULT_EXPERIMENT_ID))
        run_tags.setdefault("mlflow.runName", info["run_name"])
        for key, value in property_tags(r).items():
            run_tags.setdefault(key, value)
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
