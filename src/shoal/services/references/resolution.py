"""Reference resolution for job submission (command, pipeline and sweep alike): ``azureml:``
asset references, datastore URIs, job outputs and run artifacts, input literals, computes and
environments, each resolved to what the runner reads, or refused naming the field.
"""

from __future__ import annotations

from typing import Any

from shoal.compute import LOCAL_COMPUTE_NAMES, RUNNABLE_COMPUTE_TYPES
from shoal.constants import MLFLOW_ARTIFACTS_URI_PREFIX
from shoal.entities.expressions import resolve_output_path
from shoal.entities.kinds import parse_entity
from shoal.entities.refs import format_datastore_uri, parse_asset_ref, parse_path
from shoal.envs.spec import normalize_environment
from shoal.errors import InvalidStateError, NotFoundError, SpecError, UnsupportedError, UserError
from shoal.services.context import ServiceContext
from shoal.services.references import assets as asset_lookup
from shoal.services.storage import files
from shoal.services.storage.datastores import datastore_uri_for_url, require_datastore
from shoal.services.workspaces import DEFAULT_DATASTORE, workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import jobs as job_rows
from shoal.store import resources as resource_rows
from shoal.store import tracking as tracking_rows

ENV_ASSET_TYPES = {"mlflow_model", "custom_model", "triton_model"}


def resolve_component(ctx: ServiceContext, workspace: str, ref: str, where: str) -> dict[str, Any]:
    """A registered component, by ``azureml:name:version`` / ``name@label`` / ``name:version``."""
    parsed = parse_asset_ref(ref, kind="component")
    label = None if parsed.version else (parsed.label or "latest")
    try:
        return asset_lookup.resolve(ctx, workspace, "component", parsed.name, version=parsed.version, label=label)
    except NotFoundError as exc:
        raise NotFoundError(f"{where}: {exc.message}", details=exc.details) from exc


def resolve_compute(ctx: ServiceContext, workspace: str, compute: str | None) -> dict[str, Any]:
    ref = (compute or "").strip()
    if ref.startswith("azureml:"):
        ref = ref.split(":", 1)[1]
    if ref in LOCAL_COMPUTE_NAMES:
        return {"name": "local", "type": "local", "capacity": None}
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        row = resource_rows.find_row(session, ws_id, "compute", ref)
        if row is None:
            raise resource_rows.missing(session, ws_id, "compute", ref, extra=("local",))
        if row.type not in RUNNABLE_COMPUTE_TYPES:
            raise UnsupportedError(
                f"compute '{ref}' is of type '{row.type}'; Shoal runs jobs on local, "
                f"{', '.join(RUNNABLE_COMPUTE_TYPES)}"
            )
        if row.type == "computeinstance" and row.spec.get("state") == "Stopped":
            raise InvalidStateError(f"compute instance '{ref}' is stopped: start it first")
        capacity = int(row.spec.get("max_instances") or 1) if row.type == "amlcompute" else None
        return {"name": ref, "type": row.type, "capacity": capacity}


def resolve_environment(ctx: ServiceContext, workspace: str, env: Any) -> dict[str, Any]:
    if env is None:
        raise SpecError("a command job needs an environment")
    if isinstance(env, dict):
        entity = parse_entity("environment", {k: v for k, v in env.items() if k not in ("name", "version")})
        return {"inline": entity.to_dict()}
    ref = str(env)
    if asset_lookup.is_curated_environment(ref):
        normalize_environment(ref)  # an unknown curated name fails now, not in Preparing
        return {"curated": ref}
    parsed = parse_asset_ref(ref, kind="environment")
    label = None if parsed.version else (parsed.label or "latest")
    try:
        body = asset_lookup.resolve(ctx, workspace, "environment", parsed.name, version=parsed.version, label=label)
    except NotFoundError as exc:
        raise NotFoundError(f"job environment {ref!r}: {exc.message}", details=exc.details) from exc
    return {"asset": f"{body['name']}:{body['version']}", "spec": body}


def resolve_code(ctx: ServiceContext, workspace: str, code: str | None) -> dict[str, Any] | None:
    if not code:
        return None
    if code.startswith("azureml:") and not code.startswith("azureml://"):
        parsed = parse_asset_ref(code, kind="code")
        label = None if parsed.version else "latest"
        try:
            body = asset_lookup.resolve(ctx, workspace, "code", parsed.name, version=parsed.version, label=label)
        except NotFoundError as exc:
            raise NotFoundError(f"job code {code!r}: {exc.message}", details=exc.details) from exc
        return {"uri": body["path"], "asset": f"{body['name']}:{body['version']}"}
    ref = parse_path(code)
    if ref.scheme == "local":
        raise UserError(f"job code {code!r} is a local path: it must be uploaded first (the SDK and CLI do this)")
    if ref.scheme == "datastore":
        require_datastore(ctx, workspace, ref.datastore, f"job code {code!r}")
        return {"uri": short_uri(workspace, ref, code)}
    return {"uri": code}


def short_uri(workspace: str, ref: Any, raw: str) -> str:
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


def literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def resolve_inputs(ctx: ServiceContext, workspace: str, inputs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if not isinstance(value, dict):
            out[name] = {"type": literal_type(value), "value": value}
            continue
        kind = value.get("type") or "uri_folder"
        if kind in ("string", "integer", "number", "boolean"):
            out[name] = {"type": kind, "value": value.get("default", value.get("value"))}
            continue
        mode = value.get("mode") or "ro_mount"
        path = value.get("path")
        entry: dict[str, Any] = {"type": kind, "mode": mode}
        if value.get("path_on_compute"):
            placed = str(value["path_on_compute"])
            # The runner places it under the job's own folder (runtime.materialize); '..' would leave it.
            if ".." in placed.replace("\\", "/").split("/"):
                raise SpecError(
                    f"inputs.{name}.path_on_compute: {placed!r} may not contain '..'",
                    details={"field": f"inputs.{name}.path_on_compute"},
                )
            entry["path_on_compute"] = placed
        if path is None:
            out[name] = entry
            continue
        entry["uri"] = resolve_input_uri(ctx, workspace, name, kind, str(path))
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
    resolved = resolve_input_uri(ctx, workspace, "path", asset_type, uri, where=where)
    return resolved, job


def resolve_input_uri(
    ctx: ServiceContext, workspace: str, name: str, kind: str, path: str, *, where: str | None = None
) -> str:
    where = where or f"job input '{name}'"
    if path.startswith("azureml:") and not path.startswith("azureml://"):
        asset_kind = "model" if kind in ENV_ASSET_TYPES else "data"
        parsed = parse_asset_ref(path, kind=asset_kind)
        label = None if parsed.version else (parsed.label or "latest")
        try:
            body = asset_lookup.resolve(ctx, workspace, asset_kind, parsed.name, version=parsed.version, label=label)
        except NotFoundError as exc:
            raise NotFoundError(f"{where} refers to {path!r}: {exc.message}", details=exc.details) from exc
        asset_path = str(body["path"])
        return datastore_uri_for_url(ctx, workspace, asset_path) or asset_path
    ref = parse_path(path)
    if ref.scheme == "local":
        raise UserError(f"{where}: local path {path!r} must be uploaded first (the SDK and CLI do this)")
    if ref.scheme == "datastore":
        require_datastore(ctx, workspace, ref.datastore, where)
        return short_uri(workspace, ref, path)
    if ref.scheme in ("job_output", "runs"):
        job = ref.job or ref.run_id
        with ctx.db.read() as session:
            ws_id = workspace_id(session, workspace)
            source = job_rows.find(session, ws_id, str(job))
            if source is None:
                raise job_rows.missing(session, ws_id, str(job))
            out = (source.resolved.get("outputs") or {}).get(ref.output or "")
            if ref.scheme == "job_output" and ref.output != "artifacts" and out is None:
                raise NotFoundError(f"{where}: job '{job}' has no output '{ref.output}'")
            if out is not None:
                return str(out["path"]).rstrip("/") + ("/" + ref.path if ref.path else "/")
            art = source.resolved["artifacts"]
        if ref.path and (ref.scheme == "runs" or ref.output == "artifacts"):
            model = logged_model_path(ctx, workspace, str(job), art, ref.path)
            if model is not None:
                return f"azureml://datastores/{art['datastore']}/paths/{model}"
        return f"azureml://datastores/{art['datastore']}/paths/{art['path']}/{ref.path or ''}"
    if ref.scheme in ("http", "cloud"):
        # A blob URL of a registered account and container is read with its datastore's keys.
        return datastore_uri_for_url(ctx, workspace, path) or path
    return path


def logged_model_path(ctx: ServiceContext, workspace: str, job: str, art: dict[str, Any], path: str) -> str | None:
    """``runs:/<job>/<name>/…`` where <name> is a model the run logged with MLflow 3 (whose files
    live at the logged model's own location) rather than a folder of the run's artifacts."""
    name, _, rest = path.strip("/").partition("/")
    store = files.readable_store(ctx, workspace, art["datastore"])
    if store is not None and store.exists(f"{art['path']}/{name}"):
        return None
    with ctx.db.read() as session:
        row = tracking_rows.newest_logged_model(session, workspace_id(session, workspace), job, name)
    if row is None or not row.artifact_location.startswith(MLFLOW_ARTIFACTS_URI_PREFIX):
        return None
    location = row.artifact_location[len(MLFLOW_ARTIFACTS_URI_PREFIX) :]
    return f"{location}/{rest}" if rest else f"{location}/"


def resolve_outputs(
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
            require_datastore(ctx, workspace, ref.datastore, f"job output '{name}'")
            path = short_uri(workspace, ref, path)
        else:
            suffix = "" if kind in ("uri_file",) else "/"
            path = f"azureml://datastores/{default_datastore}/paths/azureml/{job}/{name}{suffix}"
        entry["path"] = path
        for key in ("name", "version", "description"):
            if value.get(key) is not None:
                entry[key] = str(value[key])
        out[name] = entry
    return out
