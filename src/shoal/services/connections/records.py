"""Workspace connections: stored as datastores are (the ``resource`` table, kind "connection"),
their secrets split off by the kind registry and encrypted with the server's secret box; a
connection is returned without them unless the caller holds the secrets permission and asks."""

from __future__ import annotations

from typing import Any

from shoal.entities.connection import WorkspaceConnection
from shoal.entities.kinds import merge_secrets, parse_entity, split_secrets
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context
from shoal.services.workspaces import workspace_id
from shoal.store import resources as rows
from shoal.store.paging import Page
from shoal.store.tables import ResourceRow

KIND = "connection"


def to_body(ctx: ServiceContext, workspace: str, row: ResourceRow, *, include_secrets: bool) -> dict[str, Any]:
    body = dict(row.spec)
    if include_secrets and row.secrets:
        body = merge_secrets(KIND, body, ctx.secrets.decrypt(row.secrets))
    body["name"] = row.name
    body["id"] = arm_id(workspace, "connections", row.name)
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    return body


def create_or_update(ctx: ServiceContext, workspace: str, spec: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in spec.items() if k not in WorkspaceConnection.READ_ONLY_FIELDS}
    data = parse_entity(KIND, clean).to_dict()
    public, secrets = split_secrets(KIND, data)
    token = ctx.secrets.encrypt(secrets) if secrets else None
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        existing = rows.find_row(session, ws_id, KIND, data["name"])
        same_credential = existing is not None and (existing.spec.get("credentials") or {}).get("type") == (
            public.get("credentials") or {}
        ).get("type")
        if token is None and same_credential:
            # A body sent back as `show` printed it has no secrets: keep the stored ones.
            token = existing.secrets  # type: ignore[union-attr]
        row, _ = rows.put(session, ws_id, KIND, data["name"], data["type"], public, token)
        return to_body(ctx, workspace, row, include_secrets=False)


def get(ctx: ServiceContext, workspace: str, name: str, *, include_secrets: bool = False) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = rows.get_row(session, workspace_id(session, workspace), KIND, name)
        return to_body(ctx, workspace, row, include_secrets=include_secrets)


def list_page(
    ctx: ServiceContext,
    workspace: str,
    *,
    connection_type: str | None = None,
    include_secrets: bool = False,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[dict[str, Any]]:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        page = rows.list_page(
            session, ws_id, KIND, type_=connection_type, max_results=max_results, page_token=page_token
        )
        return Page(
            [to_body(ctx, workspace, r, include_secrets=include_secrets) for r in page.items], page.next_page_token
        )


def delete(ctx: ServiceContext, workspace: str, name: str) -> None:
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        rows.delete(session, rows.get_row(session, ws_id, KIND, name))
