"""Jobs: submission (validated and resolved before anything is stored), reads, metadata updates,
cancel, and the one function that moves a job between states."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shoal.entities.expressions import check_command, resolve_output_path
from shoal.entities.names import generate_job_name
from shoal.entities.refs import format_datastore_uri, parse_asset_ref, parse_path
from shoal.entities.registry import parse_entity
from shoal.entities.status import TERMINAL, JobStatus, can_move
from shoal.errors import ConflictError, InvalidStateError, NotFoundError, SpecError, UnsupportedError, UserError
from shoal.services.assets import versions as assets
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context, iso
from shoal.services.workspaces import DEFAULT_DATASTORE, workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import resources as resource_rows
from shoal.store import tracking as tracking_rows
from shoal.store.paging import Page, clamp_page_size, decode_token, encode_token
from shoal.store.tables import JobRow, utcnow

S = JobStatus
LOCAL_COMPUTES = (None, "", "local", "serverless")
# Compute types whose jobs Shoal runs on this machine; amlcompute caps them at max_instances.
RUNNABLE_COMPUTE_TYPES = ("amlcompute", "computeinstance", "kubernetes")
ARTIFACTS_DATASTORE = "workspaceartifactstore"
UPDATABLE = {"display_name", "description", "tags", "properties", "experiment_name"}
ENV_ASSET_TYPES = {"mlflow_model", "custom_model", "triton_model"}


def now() -> datetime:
    return datetime.now(UTC)


def artifacts_prefix(job: str) -> str:
    return f"ExperimentRun/dcid.{job}"


# -- reading --------------------------------------------------------------------------------


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
    body["properties"] = props
    outputs = row.resolved.get("outputs") or {}
    if outputs:
        body["outputs"] = {
            name: {k: v for k, v in out.items() if k in ("type", "mode", "path", "name", "version")}
            for name, out in outputs.items()
        }
    if base_url:
        # Until the studio exists, the job's page is its REST resource.
        body["services"] = {
            **(body.get("services") or {}),
            "Studio": {"endpoint": f"{base_url.rstrip('/')}/api/v1/workspaces/{workspace}/jobs/{row.name}"},
        }
    return body


def _json_float(value: float) -> float | str:
    """JSON has no NaN or infinity: they travel as MLflow writes them, "NaN", "Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def get_row(session: Session, ws_id: int, name: str) -> JobRow:
    row = session.scalar(select(JobRow).where(JobRow.workspace_id == ws_id, JobRow.name == name))
    if row is None:
        raise NotFoundError(f"job '{name}' not found", details={"kind": "job", "name": name})
    return row


def get(ctx: ServiceContext, workspace: str, name: str, base_url: str | None = None) -> dict[str, Any]:
    """One job, with the params it logged and the last value of each of its metrics."""
    with ctx.db.read() as session:
        row = get_row(session, workspace_id(session, workspace), name)
        body = to_body(workspace, row, base_url)
        params, metrics = tracking_rows.run_summary(session, row.id)
    if params:
        body["params"] = params
    if metrics:
        body["metrics"] = {k: _json_float(v) for k, v in metrics.items()}
    return body


def list_page(
    ctx: ServiceContext,
    workspace: str,
    *,
    parent_job_name: str | None = None,
    list_view_type: str = "ActiveOnly",
    status: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[dict[str, Any]]:
    """Newest first, keyset-paged on the row id."""
    size = clamp_page_size(max_results)
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        query = select(JobRow).where(JobRow.workspace_id == ws_id)
        if parent_job_name:
            query = query.where(JobRow.parent_job_name == parent_job_name)
        else:
            # As in Azure ML: the workspace's jobs; pipeline steps and nested runs are listed
            # under their parent (--parent-job-name).
            query = query.where(JobRow.parent_job_name.is_(None))
        if list_view_type == "ActiveOnly":
            query = query.where(JobRow.archived.is_(False))
        elif list_view_type == "ArchivedOnly":
            query = query.where(JobRow.archived.is_(True))
        elif list_view_type != "All":
            raise UserError(f"list_view_type must be ActiveOnly, ArchivedOnly or All, got {list_view_type!r}")
        if status:
            query = query.where(JobRow.status == status)
        after = decode_token(page_token)
        if after:
            query = query.where(JobRow.id < int(after[0]))
        rows = list(session.scalars(query.order_by(JobRow.id.desc()).limit(size + 1)))
        token = encode_token([rows[size - 1].id]) if len(rows) > size else None
        return Page([to_body(workspace, r) for r in rows[:size]], token)


# -- transitions ----------------------------------------------------------------------------


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
        row.runner_pid = None
    if error is not None:
        row.error = error
    if exit_code is not None:
        row.exit_code = exit_code
    return True


# -- submission -----------------------------------------------------------------------------


def submit(ctx: ServiceContext, workspace: str, spec: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    """Validate and resolve a job, then store it Queued; a bad job leaves nothing behind."""
    clean = {k: v for k, v in spec.items() if k not in ("id", "status", "creation_context", "services_status")}
    clean.setdefault("type", "command")
    if clean["type"] == "pipeline":
        from shoal.services.jobs import pipelines

        return pipelines.submit(ctx, workspace, clean, base_url)
    if clean["type"] == "sweep":
        from shoal.services.jobs import sweeps

        return sweeps.submit(ctx, workspace, clean, base_url)
    if clean["type"] != "command":
        raise UnsupportedError(f"job type '{clean['type']}' is not supported yet; command, pipeline and sweep jobs are")
    name = clean.get("name") or generate_job_name()
    clean["name"] = name
    data, resolved = prepare_command(ctx, workspace, name, clean)
    return store_queued(ctx, workspace, name, "command", data, resolved, base_url)


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


def prepare_command(
    ctx: ServiceContext,
    workspace: str,
    name: str,
    clean: dict[str, Any],
    *,
    pending: dict[str, dict[str, Any]] | None = None,
    default_datastore: str = DEFAULT_DATASTORE,
    where: str = "job",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A command job's spec checked and every reference in it resolved (nothing stored).

    ``pending`` inputs (pipeline steps) are bound to outputs of steps that have not run yet:
    they are filled in when the step is started and count as given here."""
    pending = pending or {}
    job = parse_entity("job", clean, source=where)
    data = job.to_dict()
    for key in ("status", "start_time", "end_time", "error", "exit_code", "archived"):
        data.pop(key, None)

    compute = _resolve_compute(ctx, workspace, data.get("compute"))
    nodes = max(1, int((data.get("resources") or {}).get("instance_count") or 1))
    if compute.get("capacity") is not None and nodes > compute["capacity"]:
        raise UserError(
            f"{where}: the job asks for {nodes} nodes (resources.instance_count); compute '{compute['name']}' "
            f"has max_instances {compute['capacity']}"
        )
    data["compute"] = compute["name"] if compute["name"] != "local" else data.get("compute") or "local"
    resolved: dict[str, Any] = {"compute": compute}
    resolved["environment"] = _resolve_environment(ctx, workspace, data.get("environment"))
    resolved["code"] = _resolve_code(ctx, workspace, data.get("code"))
    given_inputs = {k: v for k, v in (data.get("inputs") or {}).items() if k not in pending}
    resolved["inputs"] = _resolve_inputs(ctx, workspace, given_inputs)
    resolved["inputs"].update(pending)
    resolved["outputs"] = _resolve_outputs(ctx, workspace, name, data.get("outputs") or {}, default_datastore)
    data["outputs"] = {
        k: {kk: vv for kk, vv in v.items() if kk in ("type", "mode", "path", "name", "version")}
        for k, v in resolved["outputs"].items()
    } or data.get("outputs")
    if not data["outputs"]:
        data.pop("outputs", None)
    given = {k for k, v in resolved["inputs"].items() if v.get("value") is not None or v.get("uri") or k in pending}
    texts = {f"{where} command": data["command"]}
    texts.update(
        {f"{where} environment variable {k}": str(v) for k, v in (data.get("environment_variables") or {}).items()}
    )
    for label, text in texts.items():
        check_command(text, inputs=set(resolved["inputs"]), outputs=set(resolved["outputs"]), given=given, where=label)
    resolved["artifacts"] = {"datastore": ARTIFACTS_DATASTORE, "path": artifacts_prefix(name)}
    data.setdefault("display_name", name)
    return data, resolved


def _resolve_compute(ctx: ServiceContext, workspace: str, compute: str | None) -> dict[str, Any]:
    ref = (compute or "").strip()
    if ref.startswith("azureml:"):
        ref = ref.split(":", 1)[1]
    if ref in LOCAL_COMPUTES:
        return {"name": "local", "type": "local", "capacity": None}
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        row = resource_rows.find_row(session, ws_id, "compute", ref)
        if row is None:
            raise NotFoundError(f"compute '{ref}' not found", details={"kind": "compute", "name": ref})
        if row.type not in RUNNABLE_COMPUTE_TYPES:
            raise UnsupportedError(
                f"compute '{ref}' is of type '{row.type}'; Shoal runs jobs on local, "
                f"{', '.join(RUNNABLE_COMPUTE_TYPES)}"
            )
        if row.type == "computeinstance" and row.spec.get("state") == "Stopped":
            raise InvalidStateError(f"compute instance '{ref}' is stopped: start it first")
        capacity = int(row.spec.get("max_instances") or 1) if row.type == "amlcompute" else None
        return {"name": ref, "type": row.type, "capacity": capacity}


def _resolve_environment(ctx: ServiceContext, workspace: str, env: Any) -> dict[str, Any]:
    if env is None:
        raise SpecError("a command job needs an environment")
    if isinstance(env, dict):
        entity = parse_entity("environment", {k: v for k, v in env.items() if k not in ("name", "version")})
        return {"inline": entity.to_dict()}
    ref = str(env)
    if assets.is_curated_environment(ref):
        from shoal.envs import normalize_environment

        normalize_environment(ref)  # an unknown curated name fails now, not in Preparing
        return {"curated": ref}
    parsed = parse_asset_ref(ref, kind="environment")
    label = None if parsed.version else (parsed.label or "latest")
    try:
        body = assets.resolve(ctx, workspace, "environment", parsed.name, version=parsed.version, label=label)
    except NotFoundError as exc:
        raise NotFoundError(f"job environment {ref!r}: {exc.message}", details=exc.details) from exc
    return {"asset": f"{body['name']}:{body['version']}", "spec": body}


def _resolve_code(ctx: ServiceContext, workspace: str, code: str | None) -> dict[str, Any] | None:
    if not code:
        return None
    if code.startswith("azureml:") and not code.startswith("azureml://"):
        parsed = parse_asset_ref(code, kind="code")
        label = None if parsed.version else "latest"
        try:
            body = assets.resolve(ctx, workspace, "code", parsed.name, version=parsed.version, label=label)
        except NotFoundError as exc:
            raise NotFoundError(f"job code {code!r}: {exc.message}", details=exc.details) from exc
        return {"uri": body["path"], "asset": f"{body['name']}:{body['version']}"}
    ref = parse_path(code)
    if ref.scheme == "local":
        raise UserError(f"job code {code!r} is a local path: it must be uploaded first (the SDK and CLI do this)")
    if ref.scheme == "datastore":
        _require_datastore(ctx, workspace, ref.datastore, f"job code {code!r}")
        return {"uri": _short_uri(workspace, ref, code)}
    return {"uri": code}


def _short_uri(workspace: str, ref: Any, raw: str) -> str:
    """Long-form datastore URIs become the short form the runner reads; another workspace's
    datastore is not this job's to use."""
    if ref.workspace and ref.workspace != workspace:
        raise UserError(f"{raw!r} names workspace '{ref.workspace}'; this job runs in '{workspace}'")
    rel = (ref.path or "").rstrip("/")
    if rel:
        safe_relpath(rel)  # no `..`, encoded separators or other escapes in a datastore path
    uri = format_datastore_uri(ref.datastore, ref.path or "")
    if raw.endswith("/") and not uri.endswith("/"):
        uri += "/"
    return uri


def _require_datastore(ctx: ServiceContext, workspace: str, datastore: str, where: str) -> None:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if resource_rows.find_row(session, ws_id, "datastore", datastore) is None:
            raise NotFoundError(f"{where} refers to datastore '{datastore}', which does not exist")


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _resolve_inputs(ctx: ServiceContext, workspace: str, inputs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if not isinstance(value, dict):
            out[name] = {"type": _literal_type(value), "value": value}
            continue
        kind = value.get("type") or "uri_folder"
        if kind in ("string", "integer", "number", "boolean"):
            out[name] = {"type": kind, "value": value.get("default", value.get("value"))}
            continue
        mode = value.get("mode") or "ro_mount"
        path = value.get("path")
        entry: dict[str, Any] = {"type": kind, "mode": mode}
        if value.get("path_on_compute"):
            entry["path_on_compute"] = value["path_on_compute"]
        if path is None:
            out[name] = entry
            continue
        entry["uri"] = _resolve_input_uri(ctx, workspace, name, kind, str(path))
        if entry["uri"] != path:
            entry["source"] = path
        out[name] = entry
    return out


def resolve_path_reference(
    ctx: ServiceContext, workspace: str, kind: str, uri: str, where: str
) -> tuple[str, str | None]:
    """An asset path that names a job's output, a run's artifacts or another asset, as the
    datastore URI it stands for, and the job it came from (if any)."""
    ref = parse_path(uri)
    job = (ref.job or ref.run_id) if ref.scheme in ("job_output", "runs") else None
    asset_type = "custom_model" if kind == "model" else "uri_folder"
    resolved = _resolve_input_uri(ctx, workspace, "path", asset_type, uri, where=where)
    return resolved, job


def _resolve_input_uri(
    ctx: ServiceContext, workspace: str, name: str, kind: str, path: str, *, where: str | None = None
) -> str:
    where = where or f"job input '{name}'"
    if path.startswith("azureml:") and not path.startswith("azureml://"):
        asset_kind = "model" if kind in ENV_ASSET_TYPES else "data"
        parsed = parse_asset_ref(path, kind=asset_kind)
        label = None if parsed.version else (parsed.label or "latest")
        try:
            body = assets.resolve(ctx, workspace, asset_kind, parsed.name, version=parsed.version, label=label)
        except NotFoundError as exc:
            raise NotFoundError(f"{where} refers to {path!r}: {exc.message}", details=exc.details) from exc
        return str(body["path"])
    ref = parse_path(path)
    if ref.scheme == "local":
        raise UserError(f"{where}: local path {path!r} must be uploaded first (the SDK and CLI do this)")
    if ref.scheme == "datastore":
        _require_datastore(ctx, workspace, ref.datastore, where)
        return _short_uri(workspace, ref, path)
    if ref.scheme in ("job_output", "runs"):
        job = ref.job or ref.run_id
        with ctx.db.read() as session:
            ws_id = workspace_id(session, workspace)
            source = get_row(session, ws_id, str(job))
            out = (source.resolved.get("outputs") or {}).get(ref.output or "")
            if ref.scheme == "job_output" and ref.output != "artifacts" and out is None:
                raise NotFoundError(f"{where}: job '{job}' has no output '{ref.output}'")
            if out is not None:
                return str(out["path"]).rstrip("/") + ("/" + ref.path if ref.path else "/")
            art = source.resolved["artifacts"]
        if ref.path and (ref.scheme == "runs" or ref.output == "artifacts"):
            model = _logged_model_path(ctx, workspace, str(job), art, ref.path)
            if model is not None:
                return f"azureml://datastores/{art['datastore']}/paths/{model}"
        return f"azureml://datastores/{art['datastore']}/paths/{art['path']}/{ref.path or ''}"
    return path


def _logged_model_path(ctx: ServiceContext, workspace: str, job: str, art: dict[str, Any], path: str) -> str | None:
    """``runs:/<job>/<name>/…`` where <name> is a model the run logged with MLflow 3 (whose files
    live at the logged model's own location) rather than a folder of the run's artifacts."""
    from shoal.services.storage import files
    from shoal.services.tracking import logged_models

    name, _, rest = path.strip("/").partition("/")
    store = files.readable_store(ctx, workspace, art["datastore"])
    if store is not None and store.exists(f"{art['path']}/{name}"):
        return None
    location = logged_models.model_location(ctx, workspace, job, name)
    if location is None:
        return None
    return f"{location}/{rest}" if rest else f"{location}/"


def _resolve_outputs(
    ctx: ServiceContext, workspace: str, job: str, outputs: dict[str, Any], default_datastore: str = DEFAULT_DATASTORE
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in outputs.items():
        value = value or {}
        kind = value.get("type") or "uri_folder"
        if kind in ("string", "integer", "number", "boolean"):
            out[name] = {"type": kind}
            continue
        entry = {"type": kind, "mode": value.get("mode") or "rw_mount"}
        path = value.get("path")
        if path:
            path = resolve_output_path(str(path), name=job, output_name=name, default_datastore=default_datastore)
            ref = parse_path(path)
            if ref.scheme != "datastore":
                raise SpecError(f"job output '{name}': path {path!r} must be a datastore URI (azureml://datastores/…)")
            _require_datastore(ctx, workspace, ref.datastore, f"job output '{name}'")
            path = _short_uri(workspace, ref, path)
        else:
            suffix = "" if kind in ("uri_file",) else "/"
            path = f"azureml://datastores/{default_datastore}/paths/azureml/{job}/{name}{suffix}"
        entry["path"] = path
        for key in ("name", "version", "description"):
            if value.get(key) is not None:
                entry[key] = str(value[key])
        out[name] = entry
    return out


# -- changes --------------------------------------------------------------------------------


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
        row = get_row(session, workspace_id(session, workspace), name)
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
