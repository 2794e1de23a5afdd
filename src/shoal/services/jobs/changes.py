"""Changing a job after submission: its metadata, its archive flag, and asking it to stop."""

from __future__ import annotations

from typing import Any

from shoal.entities.status import TERMINAL, JobStatus
from shoal.errors import InvalidStateError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs.state import get_row, to_body, transition
from shoal.services.workspaces import workspace_id
from shoal.store import tracking as tracking_rows
from shoal.store.tables import utcnow

S = JobStatus
UPDATABLE = {"display_name", "description", "tags", "properties", "experiment_name"}


def update(ctx: ServiceContext, workspace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    bad = sorted(set(patch) - UPDATABLE)
    if bad:
        raise UserError(f"job field(s) {', '.join(bad)} cannot be updated; updatable: {', '.join(sorted(UPDATABLE))}")
    with ctx.db.write() as session:
        row = get_row(session, workspace_id(session, workspace), name)
        spec = dict(row.spec)
        for key, value in patch.items():
            if key == "experiment_name":
                if isinstance(value, str) and value:
                    row.experiment_name = value
                    row.experiment_id = tracking_rows.get_or_create_experiment(session, row.workspace_id, value).id
            elif key in ("tags", "properties"):
                if not isinstance(value, dict):
                    raise UserError(f"{key} must be a mapping")
                spec[key] = {str(k): str(v) for k, v in value.items()}
            else:
                spec[key] = value
                if key == "display_name":
                    row.run_name = value if isinstance(value, str) and value else None
        for key in ("display_name", "description"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise UserError(f"{key} must be a string")
        if "experiment_name" in patch and (
            not isinstance(patch["experiment_name"], str) or not patch["experiment_name"]
        ):
            raise UserError("experiment_name must be a non-empty string")
        row.spec = spec
        row.updated_at = utcnow()
        return to_body(workspace, row)


def set_archived(ctx: ServiceContext, workspace: str, name: str, archived: bool) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = get_row(session, workspace_id(session, workspace), name)
        if archived and row.status not in TERMINAL:
            raise InvalidStateError(f"job '{name}' is {row.status}: only finished jobs can be archived")
        row.archived = archived
        row.updated_at = utcnow()
        return to_body(workspace, row)


def request_cancel(ctx: ServiceContext, workspace: str, name: str) -> dict[str, Any]:
    """Jobs not yet started are canceled at once; running ones are told to stop."""
    with ctx.db.write() as session:
        # Locked: a dispatcher of any server claiming this job waits for (or skips) this change.
        row = get_row(session, workspace_id(session, workspace), name, for_update=True)
        if row.status in TERMINAL:
            raise InvalidStateError(f"job '{name}' already finished ({row.status})")
        if row.type in ("pipeline", "sweep"):
            # Its steps or trials are canceled by its controller; it ends when they have.
            transition(row, S.CANCEL_REQUESTED)
        elif row.status in (S.NOT_STARTED, S.QUEUED):
            transition(row, S.CANCELED)
        elif row.status != S.CANCEL_REQUESTED:
            transition(row, S.CANCEL_REQUESTED)
        body = to_body(workspace, row)
    ctx.notify_jobs()
    return body
