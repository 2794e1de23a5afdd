"""Workspaces and their built-in datastores."""

from __future__ import annotations

from typing import Any

from shoal.entities.kinds import parse_entity
from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context
from shoal.store import resources as resource_rows
from shoal.store import workspaces as workspace_rows
from shoal.store.tables import WorkspaceRow

DEFAULT_WORKSPACE = "default"
DEFAULT_DATASTORE = "workspaceblobstore"
BUILTIN_DATASTORES = ("workspaceblobstore", "workspaceartifactstore")
READ_ONLY = ("id", "creation_context", "mlflow_tracking_uri")


def builtin_datastore_path(ctx: ServiceContext, workspace: str, name: str) -> str:
    root = ctx.artifact_root.rstrip("/")
    return f"{root}/workspaces/{workspace}/datastores/{name}"


def builtin_datastore_spec(ctx: ServiceContext, workspace: str, name: str) -> dict[str, Any]:
    description = (
        "Default datastore: uploads and job outputs" if name == DEFAULT_DATASTORE else "Run history and job artifacts"
    )
    return {
        "name": name,
        "type": "local",
        "path": builtin_datastore_path(ctx, workspace, name),
        "description": description,
    }


def to_body(row: WorkspaceRow, base_url: str | None) -> dict[str, Any]:
    body = dict(row.spec)
    body["name"] = row.name
    body["id"] = arm_id(row.name)
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    if base_url:
        body["mlflow_tracking_uri"] = f"{base_url.rstrip('/')}/api/v1/workspaces/{row.name}/mlflow"
    return body


def create_or_update(ctx: ServiceContext, spec: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    clean = {k: v for k, v in spec.items() if k not in READ_ONLY}
    entity = parse_entity("workspace", clean)
    stored = entity.to_dict()
    for key in READ_ONLY:
        stored.pop(key, None)
    stored.pop("name", None)
    with ctx.db.write() as session:
        row, created = workspace_rows.upsert(session, entity.name, stored)
        _ensure_builtin_datastores(ctx, session, row)
        return to_body(row, base_url)


def _ensure_builtin_datastores(ctx: ServiceContext, session: Any, row: WorkspaceRow) -> None:
    for name in BUILTIN_DATASTORES:
        if resource_rows.find_row(session, row.id, "datastore", name) is None:
            spec = builtin_datastore_spec(ctx, row.name, name)
            resource_rows.put(session, row.id, "datastore", name, "local", spec, None)


def ensure_default(ctx: ServiceContext) -> None:
    """A ``default`` workspace exists from the first start, so ``-w`` is optional."""
    with ctx.db.write() as session:
        if workspace_rows.find_row(session, DEFAULT_WORKSPACE) is None:
            row, _ = workspace_rows.upsert(
                session,
                DEFAULT_WORKSPACE,
                {"description": "Default Shoal workspace", "location": "local"},
            )
            _ensure_builtin_datastores(ctx, session, row)


def get(ctx: ServiceContext, name: str, base_url: str | None = None) -> dict[str, Any]:
    with ctx.db.read() as session:
        return to_body(workspace_rows.get_row(session, name), base_url)


def list_all(ctx: ServiceContext, base_url: str | None = None) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return [to_body(row, base_url) for row in workspace_rows.list_rows(session)]


UPDATABLE = {
    "description",
    "display_name",
    "tags",
    "image_build_compute",
    "public_network_access",
    "primary_user_assigned_identity",
    "system_datastores_auth_mode",
    "application_insights",
    "container_registry",
    "identity",
    "managed_network",
    "enable_data_isolation",
    "serverless_compute",
}


def update(ctx: ServiceContext, name: str, patch: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    bad = sorted(set(patch) - UPDATABLE)
    if bad:
        allowed = ", ".join(sorted(UPDATABLE))
        raise UserError(f"workspace field(s) {', '.join(bad)} cannot be updated; updatable: {allowed}")
    with ctx.db.write() as session:
        row = workspace_rows.get_row(session, name)
        merged = {**row.spec, **patch, "name": name}
        entity = parse_entity("workspace", merged)
        stored = entity.to_dict()
        stored.pop("name", None)
        workspace_rows.upsert(session, name, stored)
        return to_body(row, base_url)


def delete(ctx: ServiceContext, name: str) -> None:
    with ctx.db.write() as session:
        row = workspace_rows.find_row(session, name)
        if row is None:
            raise workspace_rows.missing(session, name)
        session.delete(row)


def workspace_id(session: Any, name: str) -> int:
    return workspace_rows.id_of(session, name)
