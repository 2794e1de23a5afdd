"""Schedules: create or update (the job to create checked and stored with it), show, list,
enable, disable, delete. Firing is ``firing.py``'s."""

from __future__ import annotations

import copy
from typing import Any

from shoal.entities.kinds import parse_entity
from shoal.entities.refs import is_local_path
from shoal.entities.schedule import JobSchedule
from shoal.entities.time_zones import zone_info
from shoal.errors import InvalidStateError, ShoalError, SpecError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import pipeline_submission
from shoal.services.jobs import state as job_state
from shoal.services.records import arm_id, creation_context, iso
from shoal.services.references.resolution import resolve_compute
from shoal.services.schedules.timing import as_utc, next_fire
from shoal.services.workspaces import workspace_id
from shoal.store import schedules as rows
from shoal.store.paging import Page
from shoal.store.tables import ScheduleRow

KIND = "schedule"
LIST_VIEWS = {"enabled_only": True, "disabled_only": False, "all": None}
# Properties the server sets on the jobs it starts (and takes off a job copied as a template).
SERVER_PROPERTY_PREFIXES = ("shoal.", "azureml.scheduleTrigger.", "azureml.git.")


def fill_expressions(value: Any, name: str, when: str) -> Any:
    """``${{name}}`` (the created job's name) and ``${{creation_context.trigger_time}}`` (the fire
    time) filled in, as Azure ML fills them in a scheduled job."""
    if isinstance(value, str):
        return value.replace("${{name}}", name).replace("${{creation_context.trigger_time}}", when)
    if isinstance(value, dict):
        return {k: fill_expressions(v, name, when) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_expressions(v, name, when) for v in value]
    return value


def to_body(workspace: str, row: ScheduleRow) -> dict[str, Any]:
    body = dict(row.spec)
    body["name"] = row.name
    body["id"] = arm_id(workspace, "schedules", row.name)
    body["is_enabled"] = bool(row.enabled)
    body["provisioning_state"] = "Succeeded"
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    for key, value in (
        ("next_fire_time", row.next_fire_at and iso(row.next_fire_at)),
        ("last_fire_time", row.last_fire_at and iso(row.last_fire_at)),
        ("last_job_name", row.last_job_name),
        ("last_error", row.last_error),
    ):
        if value:
            body[key] = value
    return body


def _template_of(session: Any, ws_id: int, name: str, where: str) -> dict[str, Any]:
    """An existing job's submitted spec, to start again: ``azureml:<job>`` in ``create_job``."""
    row = job_state.get_row(session, ws_id, name)
    if row.parent_job_name:
        raise UserError(f"{where}: job '{name}' is a step of '{row.parent_job_name}'; schedule that job instead")
    spec = copy.deepcopy(dict(row.spec))
    spec.pop("name", None)
    props = {k: v for k, v in (spec.get("properties") or {}).items() if not k.startswith(SERVER_PROPERTY_PREFIXES)}
    spec["properties"] = props
    return spec


def _job_name_of(ref: str) -> str:
    text = ref[len("azureml:") :] if ref.startswith("azureml:") else ref
    return text.rstrip("/").rsplit("/jobs/", 1)[-1]  # an ARM id names the job last


def _resolve_create_job(session: Any, ws_id: int, create_job: Any) -> dict[str, Any]:
    """The full job spec a fire submits: inline as given, or a copy of an existing job (with overrides)."""
    overrides: dict[str, Any] = {}
    ref = create_job
    if isinstance(create_job, dict):
        if "job" not in create_job:
            job = copy.deepcopy(create_job)
            job.setdefault("type", "command")  # as job submission reads it
            parse_entity("job", job, source="create_job")  # the whole job checked now, naming fields
            return job
        overrides = {k: v for k, v in create_job.items() if k != "job"}
        ref = create_job["job"]
    if is_local_path(ref) and not ref.startswith("azureml:"):
        raise SpecError(
            f"create_job {ref!r} is a local file: load the schedule with `shoal schedule create -f` or "
            "the SDK (load_schedule, JobSchedule), which inline it"
        )
    job = _template_of(session, ws_id, _job_name_of(ref), "create_job")
    for key, value in overrides.items():
        merge = isinstance(value, dict) and isinstance(job.get(key), dict)
        job[key] = {**job[key], **value} if merge else value
    parse_entity("job", job, source="create_job")
    return job


def _check_references(ctx: ServiceContext, workspace: str, job: dict[str, Any]) -> None:
    """What every fire would refuse, refused now: a compute that does not exist, a pipeline whose
    steps do not fit together. (Other references are checked when each job is submitted.)"""
    try:
        computes = [job.get("compute")]
        if job.get("type") == "pipeline":
            computes.append((job.get("settings") or {}).get("default_compute"))
            filled = fill_expressions(job, "scheduled-job", job_state.now().isoformat())  # as a fire fills them
            pipeline_submission.validate(ctx, workspace, parse_entity("job", filled).to_dict())
        for compute in filter(None, computes):
            try:
                resolve_compute(ctx, workspace, compute)
            except InvalidStateError:
                pass  # a stopped compute instance may be started before the schedule fires
    except ShoalError as exc:
        exc.message = f"create_job: {exc.message}"
        exc.args = (exc.message,)
        raise


def create_or_update(ctx: ServiceContext, workspace: str, spec: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in spec.items() if k not in JobSchedule.READ_ONLY_FIELDS}
    entity = parse_entity(KIND, clean)
    assert isinstance(entity, JobSchedule)
    with ctx.db.read() as session:
        job = _resolve_create_job(session, workspace_id(session, workspace), entity.create_job)
    _check_references(ctx, workspace, job)
    now = job_state.now()
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        data = entity.to_dict()
        data["create_job"] = job
        existing = rows.find_row(session, ws_id, entity.name)
        created = existing.created_at if existing is not None else now
        if entity.trigger.start_time is None:
            # Azure's default start is the creation time; written down so a recurrence keeps its phase.
            local = as_utc(created).astimezone(zone_info(entity.trigger.time_zone))
            data["trigger"]["start_time"] = local.replace(tzinfo=None, microsecond=0).isoformat()
        trigger = type(entity.trigger).model_validate(data["trigger"])
        following = next_fire(trigger, now, created=created)
        row = rows.put(session, ws_id, entity.name, data, following)
        return to_body(workspace, row)


def get(ctx: ServiceContext, workspace: str, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        return to_body(workspace, rows.get_row(session, workspace_id(session, workspace), name))


def list_page(
    ctx: ServiceContext,
    workspace: str,
    *,
    list_view_type: str = "enabled_only",
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[dict[str, Any]]:
    view = list_view_type.lower()
    if view not in LIST_VIEWS:
        raise UserError(f"list_view_type must be one of {', '.join(LIST_VIEWS)}, got {list_view_type!r}")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        page = rows.list_page(session, ws_id, enabled=LIST_VIEWS[view], max_results=max_results, page_token=page_token)
        return Page([to_body(workspace, r) for r in page.items], page.next_page_token)


def set_enabled(ctx: ServiceContext, workspace: str, name: str, enabled: bool) -> dict[str, Any]:
    """Enable (the next fire time counted from now: missed times are not made up) or disable."""
    now = job_state.now()
    with ctx.db.write() as session:
        row = rows.get_row(session, workspace_id(session, workspace), name)
        following = None
        if enabled:
            entity = parse_entity(KIND, row.spec)
            assert isinstance(entity, JobSchedule)
            following = next_fire(entity.trigger, now, created=row.created_at)
        if enabled != row.enabled or (enabled and row.next_fire_at is None):
            rows.set_enabled(row, enabled, following)
        return to_body(workspace, row)


def delete(ctx: ServiceContext, workspace: str, name: str) -> None:
    """Only a disabled schedule can be deleted, as in Azure ML; the jobs it started stay."""
    with ctx.db.write() as session:
        row = rows.get_row(session, workspace_id(session, workspace), name)
        if row.enabled:
            raise InvalidStateError(
                f"schedule '{name}' is enabled; disable it first (shoal schedule disable -n {name}), then delete it"
            )
        rows.delete(session, row)
