"""Versioned assets (model, data, environment, component, code): create, get, list, update,
archive and restore, with references checked on the server before anything is stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from shoal.entities.kinds import parse_entity
from shoal.entities.refs import parse_path
from shoal.entities.yamlfile import parse_yaml_text
from shoal.errors import ConflictError, SpecError, UserError
from shoal.services.context import ServiceContext
from shoal.services.references.assets import check_asset_reference, check_kind, spec_hash, to_body
from shoal.services.references.resolution import resolve_path_reference
from shoal.services.storage import files
from shoal.services.storage.datastores import require_datastore
from shoal.services.workspaces import workspace_id
from shoal.store import assets as rows
from shoal.store.paging import Page
from shoal.store.tables import AssetVersionRow, utcnow

READ_ONLY = ("id", "creation_context", "latest_version", "archived", "job_name", "utc_time_created")


# Metadata that `update` may change; an asset version is otherwise immutable.
UPDATABLE = {
    "model": {"description", "tags", "stage", "properties"},
    "data": {"description", "tags", "properties"},
    "environment": {"description", "tags", "properties"},
    "component": {"description", "tags", "display_name", "properties"},
    "code": {"description", "tags", "properties"},
}


CREATE_RETRIES = 20
MAX_MLMODEL = 1_000_000


def create(
    ctx: ServiceContext,
    workspace: str,
    kind: str,
    name: str,
    spec: dict[str, Any],
    version: str | None,
    *,
    server_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a version; ``version=None`` takes the next integer (safe under concurrency).

    ``server_fields`` are read-only fields the server itself sets (a model's ``job_name`` when
    the MLflow registry registers a run's model); clients' values for them are dropped."""
    check_kind(kind)
    clean = {k: v for k, v in spec.items() if k not in READ_ONLY}
    clean["name"] = name
    if version is not None:
        clean["version"] = version
    else:
        clean.pop("version", None)
    entity = parse_entity(kind, clean)
    stored = entity.to_dict()
    for key in ("name", "version", *READ_ONLY):
        stored.pop(key, None)
    stage = stored.pop("stage", None)
    stored.update(server_fields or {})
    _check_references(ctx, workspace, kind, name, stored)
    digest = spec_hash({**stored, "stage": stage})

    last_error: Exception | None = None
    for _ in range(CREATE_RETRIES):
        try:
            with ctx.db.write() as session:
                ws_id = workspace_id(session, workspace)
                container = rows.ensure_container(session, ws_id, kind, name)
                if version is None:
                    chosen = rows.allocate_version(session, container)
                else:
                    existing = rows.find_version(session, container.id, version)
                    if existing is not None:
                        if existing.spec_hash != digest:
                            raise _conflict(kind, name, version, existing, stored, stage)
                        return to_body(workspace, container, existing)
                    rows.note_explicit_version(session, container, version)
                    chosen = version
                row = rows.insert_version(session, container, chosen, stored, digest, stage)
                return to_body(workspace, container, row)
        except IntegrityError as exc:  # a concurrent creator took the name or number: try again
            last_error = exc
    raise ConflictError(f"could not create {kind} '{name}': too much contention ({last_error})")


def _conflict(
    kind: str, name: str, version: str, existing: AssetVersionRow, stored: dict[str, Any], stage: str | None
) -> ConflictError:
    new = {**stored, "stage": stage}
    old = {**existing.spec, "stage": existing.stage}
    differing = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
    return ConflictError(
        f"{kind} '{name}' version '{version}' already exists with a different body "
        f"(differs in: {', '.join(differing)}). Asset versions are immutable: create a new version, "
        f"or change only {', '.join(sorted(UPDATABLE[kind]))} with `shoal {kind} update`.",
        details={"kind": kind, "name": name, "version": version, "differs": differing},
    )


def _check_references(ctx: ServiceContext, workspace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    if kind in ("model", "data") and spec.get("path"):
        _check_asset_path(ctx, workspace, kind, name, spec)
    if kind == "code" and spec.get("path"):
        _check_storage_uri(ctx, workspace, f"code '{name}'", spec["path"])
    if kind == "environment":
        build = spec.get("build") or {}
        if build.get("path"):
            _check_storage_uri(ctx, workspace, f"environment '{name}' build context", build["path"])
    if kind == "component" and spec.get("type", "command") == "command":
        env = spec.get("environment")
        if isinstance(env, str):
            check_asset_reference(ctx, workspace, "environment", env, f"component '{name}'")
        code = spec.get("code")
        if isinstance(code, str):
            if code.startswith("azureml:") and not code.startswith("azureml://"):
                check_asset_reference(ctx, workspace, "code", code, f"component '{name}'")
            else:
                _check_storage_uri(ctx, workspace, f"component '{name}' code", code)
    for field in ("datastore",):
        ds = spec.get(field)
        if ds:
            ds_name = ds.split(":", 1)[1] if ds.startswith("azureml:") else ds
            require_datastore(ctx, workspace, ds_name, f"{kind} '{name}'")


def _check_storage_uri(ctx: ServiceContext, workspace: str, what: str, uri: str) -> None:
    ref = parse_path(uri)
    if ref.scheme == "local":
        raise UserError(f"{what}: local path {uri!r} must be uploaded first (the SDK and CLI do this)")
    if ref.scheme == "datastore":
        require_datastore(ctx, workspace, ref.datastore, what)
        store = files.readable_store(ctx, workspace, ref.datastore)
        if store is not None:
            files.require_path(store, ref.path.rstrip("/"), what, ref.datastore)


def _check_asset_path(ctx: ServiceContext, workspace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    uri = spec["path"]
    what = f"{kind} '{name}'"
    if kind == "data" and spec.get("source"):
        return  # a data import: the import writes the path (and may create its datastore)
    ref = parse_path(uri)
    if ref.scheme == "local":
        raise UserError(f"{what}: local path {uri!r} must be uploaded first (the SDK and CLI do this)")
    if ref.scheme in ("job_output", "runs", "asset") or (uri.startswith("azureml:") and "://" not in uri):
        # Registering what a job wrote (azureml://jobs/<job>/outputs/…, runs:/<job>/…) or another
        # asset's files: the path becomes the datastore path they live at, so the asset can be
        # downloaded and used like any other; where it came from stays in its properties.
        resolved, job = resolve_path_reference(ctx, workspace, kind, uri, what)
        spec["path"] = resolved
        spec["properties"] = {**(spec.get("properties") or {}), "shoal.source_path": uri}
        if job and kind == "model":
            spec["job_name"] = job
        ref = parse_path(resolved)
    if ref.scheme != "datastore":
        return  # http(s) and cloud URLs are kept as references
    require_datastore(ctx, workspace, ref.datastore, what)
    store = files.readable_store(ctx, workspace, ref.datastore)
    if store is None:
        return
    rel = ref.path.rstrip("/")
    if not store.exists(rel):
        # As in Azure ML, a datastore path need not exist yet (a job may write it later); the
        # datastore itself must. What is there is checked against the asset's type.
        return
    asset_type = spec.get("type")
    if kind == "data":
        if asset_type == "uri_file" and store.isdir(rel):
            raise SpecError(f"{what}: type uri_file needs a file, but {uri!r} is a folder")
        if asset_type in ("uri_folder", "mltable") and not store.isdir(rel):
            raise SpecError(f"{what}: type {asset_type} needs a folder, but {uri!r} is a file")
        if asset_type == "mltable" and not store.exists(f"{rel}/MLTable"):
            raise SpecError(f"{what}: an mltable folder must contain an 'MLTable' file; {uri!r} has none")
    if kind == "model" and asset_type == "mlflow_model":
        if not store.isdir(rel) or not store.exists(f"{rel}/MLmodel"):
            raise SpecError(f"{what}: an mlflow_model must be a folder containing an 'MLmodel' file; {uri!r} has none")
        if not spec.get("flavors"):
            spec["flavors"] = _read_flavors(store, f"{rel}/MLmodel", what)


def _read_flavors(store: Any, rel: str, what: str) -> dict[str, Any]:
    with store.open_read(rel) as fh:
        raw = fh.read(MAX_MLMODEL + 1)
    if len(raw) > MAX_MLMODEL:
        raise UserError(f"{what}: its MLmodel file is larger than {MAX_MLMODEL} bytes", details={"file": rel})
    if not raw.strip():
        return {}
    try:
        # The CLI's bounded loader: an alias bomb (a few hundred bytes that expand to megabytes)
        # is refused before anything is built, and the error names the file.
        mlmodel = parse_yaml_text(raw.decode("utf-8", errors="replace"), f"{what}: MLmodel file '{rel}'")
    except SpecError as exc:
        raise UserError(exc.message, details={"file": rel}) from None
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    return flavors if isinstance(flavors, dict) else {}


def list_page(
    ctx: ServiceContext,
    workspace: str,
    kind: str,
    *,
    name: str | None = None,
    stage: str | None = None,
    list_view_type: str = "ActiveOnly",
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[dict[str, Any]]:
    check_kind(kind)
    archived = {"ActiveOnly": False, "ArchivedOnly": True, "All": None}.get(list_view_type, "bad")
    if archived == "bad":
        raise UserError(f"list_view_type must be ActiveOnly, ArchivedOnly or All, got {list_view_type!r}")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if name:
            container = rows.get_container(session, ws_id, kind, name)
            page = rows.list_versions(
                session,
                container,
                archived=archived,
                stage=stage,
                max_results=max_results,
                page_token=page_token,
            )
            return Page([to_body(workspace, container, r) for r in page.items], page.next_page_token)
        latest = rows.list_latest(
            session,
            ws_id,
            kind,
            archived=archived,
            stage=stage,
            max_results=max_results,
            page_token=page_token,
        )
        items = []
        for container, row in latest.items:
            body = to_body(workspace, container, row)
            body["latest_version"] = row.version
            items.append(body)
        return Page(items, latest.next_page_token)


def update(
    ctx: ServiceContext, workspace: str, kind: str, name: str, version: str, patch: dict[str, Any]
) -> dict[str, Any]:
    check_kind(kind)
    bad = sorted(set(patch) - UPDATABLE[kind])
    if bad:
        raise UserError(
            f"{kind} field(s) {', '.join(bad)} cannot be updated: asset versions are immutable "
            f"(asset paths can never change); updatable: {', '.join(sorted(UPDATABLE[kind]))}"
        )
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        container = rows.get_container(session, ws_id, kind, name)
        row = rows.get_version(session, container, version)
        spec = dict(row.spec)
        stage = row.stage
        for key, value in patch.items():
            if key == "stage":
                stage = value
            elif key in ("tags", "properties"):
                if value is not None and not isinstance(value, dict):
                    raise UserError(f"{key} must be a mapping of strings")
                spec[key] = {str(k): str(v) for k, v in (value or {}).items()}
            else:
                spec[key] = value
        # Validate the result as a whole so a bad value never reaches the store.
        parse_entity(kind, {**spec, "name": name, "version": version, **({"stage": stage} if stage else {})})
        row.spec = spec
        row.stage = stage
        row.spec_hash = spec_hash({**spec, "stage": stage})
        row.updated_at = utcnow()
        return to_body(workspace, container, row)


def set_archived(
    ctx: ServiceContext,
    workspace: str,
    kind: str,
    name: str,
    *,
    version: str | None,
    label: str | None,
    archived: bool,
) -> None:
    check_kind(kind)
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        container = rows.get_container(session, ws_id, kind, name)
        target = None
        if version is not None:
            target = rows.get_version(session, container, version)
        elif label is not None:
            if label != "latest":
                raise UserError(f"unknown label '{label}'; supported: latest")
            target = rows.latest_version(session, container)
        rows.set_archived(session, container, target, archived)
