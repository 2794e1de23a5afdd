"""The job floor: the state machine's one writer, job rows as stored and as returned.

Every job type (command, pipeline, sweep, MLflow run) is created with :func:`new_row` and moved
only by :func:`transition`, which checks the table of allowed moves in ``entities/status.py``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shoal.entities.status import TERMINAL, JobStatus, can_move
from shoal.errors import ConflictError, InvalidStateError
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context, iso
from shoal.services.workspaces import workspace_id
from shoal.store import jobs as job_rows
from shoal.store import tracking as tracking_rows
from shoal.store.tables import JobRow

S = JobStatus


ARTIFACTS_DATASTORE = "workspaceartifactstore"


def now() -> datetime:
    return datetime.now(UTC)


def artifacts_prefix(job: str) -> str:
    return f"ExperimentRun/dcid.{job}"


def to_body(workspace: str, row: JobRow, base_url: str | None = None) -> dict[str, Any]:
    body = dict(row.spec)
    body["name"] = row.name
    body["id"] = arm_id(workspace, "jobs", row.name)
    body["status"] = row.status
    body["experiment_name"] = row.experiment_name
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    body["compute"] = row.spec.get("compute") or "local"
    if row.start_time:
        body["start_time"] = iso(row.start_time)
    if row.end_time:
        body["end_time"] = iso(row.end_time)
    if row.error:
        body["error"] = row.error
    if row.exit_code is not None:
        body["exit_code"] = row.exit_code
    if row.archived:
        body["archived"] = True
    props = dict(body.get("properties") or {})
    props.update({f"shoal.status_time.{k}": v for k, v in (row.status_times or {}).items()})
    if row.queue_reason and row.status == S.QUEUED:
        props["shoal.queue_reason"] = row.queue_reason
    if row.follows:
        # Prepared on a busy node of its compute: its command started (or starts) when that job's ended.
        props["shoal.runs_after"] = row.follows
    body["properties"] = props
    outputs = row.resolved.get("outputs") or {}
    if outputs:
        body["outputs"] = {
            name: {k: v for k, v in out.items() if k in ("type", "mode", "path", "name", "version", "value")}
            for name, out in outputs.items()
        }
    if base_url:
        # The job's page in the studio (what `job create --web` opens and `studio_url` gives).
        body["services"] = {
            **(body.get("services") or {}),
            "Studio": {"endpoint": f"{base_url.rstrip('/')}/studio/workspaces/{workspace}/jobs/{row.name}"},
        }
    return body


def json_float(value: float) -> float | str:
    """JSON has no NaN or infinity: they travel as MLflow writes them, "NaN", "Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def get_row(session: Session, ws_id: int, name: str, *, for_update: bool = False) -> JobRow:
    """A job by name or NOT_FOUND; ``for_update`` locks it for the write transaction."""
    row = job_rows.find(session, ws_id, name, for_update=for_update)
    if row is None:
        raise job_rows.missing(session, ws_id, name)
    return row


def transition(
    row: JobRow,
    target: JobStatus | str,
    *,
    error: dict[str, Any] | None = None,
    exit_code: int | None = None,
) -> bool:
    """The only writer of job status. Returns False when the job is already there."""
    target = JobStatus(target)
    if row.status == target:
        return False
    if not can_move(row.status, target):
        raise InvalidStateError(
            f"job '{row.name}' cannot go from {row.status} to {target}",
            details={"from": row.status, "to": str(target)},
        )
    stamp = now()
    row.status = str(target)
    row.status_times = {**(row.status_times or {}), str(target): stamp.isoformat()}
    row.updated_at = stamp
    if target == S.RUNNING and row.start_time is None:
        row.start_time = stamp
    if target in TERMINAL:
        row.end_time = stamp
        row.runner_handle = None
    if error is not None:
        row.error = error
    if exit_code is not None:
        row.exit_code = exit_code
    return True


def store_queued(
    ctx: ServiceContext,
    workspace: str,
    name: str,
    type_name: str,
    data: dict[str, Any],
    resolved: dict[str, Any],
    base_url: str | None,
) -> dict[str, Any]:
    """Store a checked and resolved job as Queued and wake the dispatcher; its body."""
    experiment = data.pop("experiment_name", None) or "Default"
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            row = new_row(session, ws_id, name, type_name, data, resolved, experiment)
            session.flush()
            transition(row, S.QUEUED)
            body = to_body(workspace, row, base_url)
    except IntegrityError as exc:
        raise ConflictError(f"a job named '{name}' already exists in workspace '{workspace}'") from exc
    ctx.notify_jobs()
    return body


def new_row(
    session: Session,
    ws_id: int,
    name: str,
    type_name: str,
    data: dict[str, Any],
    resolved: dict[str, Any],
    experiment: str,
    *,
    parent: str | None = None,
) -> JobRow:
    """A job row in NotStarted (the caller moves it on), added to the session."""
    exp = tracking_rows.get_or_create_experiment(session, ws_id, experiment)
    row = JobRow(
        workspace_id=ws_id,
        name=name,
        type=type_name,
        status=str(S.NOT_STARTED),
        compute=(resolved.get("compute") or {}).get("name") or "local",
        experiment_name=experiment,
        experiment_id=exp.id,
        run_name=data.get("display_name"),
        parent_job_name=parent or data.get("parent_job_name"),
        spec=data,
        resolved=resolved,
        status_times={str(S.NOT_STARTED): now().isoformat()},
        attempt=0,
    )
    session.add(row)
    return row
