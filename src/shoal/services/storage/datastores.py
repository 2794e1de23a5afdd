"""Datastores: connection records whose credentials are encrypted at rest and never returned
unless the caller holds the secrets permission and asks for them."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from shoal.entities.kinds import merge_secrets, parse_entity, split_secrets
from shoal.errors import InvalidStateError, NotFoundError, UserError, not_found_hint
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context
from shoal.services.workspaces import BUILTIN_DATASTORES, DEFAULT_DATASTORE, workspace_id
from shoal.storage.datastores import blob_account_url
from shoal.storage.endpoints import check_endpoints
from shoal.store import resources as rows
from shoal.store.paging import Page
from shoal.store.tables import ResourceRow

KIND = "datastore"
READ_ONLY = ("id", "creation_context", "is_default")


def to_body(ctx: ServiceContext, workspace: str, row: ResourceRow, *, include_secrets: bool) -> dict[str, Any]:
    body = dict(row.spec)
    if include_secrets and row.secrets:
        body = merge_secrets(KIND, body, ctx.secrets.decrypt(row.secrets))
    body["name"] = row.name
    body["id"] = arm_id(workspace, "datastores", row.name)
    body["is_default"] = row.name == DEFAULT_DATASTORE
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    return body


def create_or_update(
    ctx: ServiceContext, workspace: str, spec: dict[str, Any], *, allow_loopback: bool = False
) -> dict[str, Any]:
    """Create or replace a datastore. ``allow_loopback``: the caller is an admin, who may point a
    cloud datastore at the server's own host (storage/endpoints.py)."""
    clean = {k: v for k, v in spec.items() if k not in READ_ONLY}
    entity = parse_entity(KIND, clean)
    data = entity.to_dict()
    if entity.name in BUILTIN_DATASTORES:
        raise InvalidStateError(f"datastore '{entity.name}' is built in and cannot be changed")
    check_endpoints(data["type"], data, allow_loopback=allow_loopback, label=f"datastore '{entity.name}'")
    if data["type"] == "local":
        path = str(data.get("path") or "")
        ctx.local_roots.check(path, f"datastore '{entity.name}'")
        if not os.path.isdir(path):
            raise NotFoundError(f"datastore '{entity.name}': folder '{path}' does not exist on the server")
    public, secrets = split_secrets(KIND, data)
    token = ctx.secrets.encrypt(secrets) if secrets else None
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        existing = rows.find_row(session, ws_id, KIND, entity.name)
        if token is None and existing is not None and existing.type == data["type"]:
            # A body sent back as `show` printed it has no secrets: keep the stored ones.
            token = existing.secrets
            if existing.spec.get("credentials") and not public.get("credentials"):
                public["credentials"] = existing.spec["credentials"]
        row, _ = rows.put(session, ws_id, KIND, entity.name, data["type"], public, token)
        return to_body(ctx, workspace, row, include_secrets=False)


def get(ctx: ServiceContext, workspace: str, name: str, *, include_secrets: bool = False) -> dict[str, Any]:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        return to_body(ctx, workspace, rows.get_row(session, ws_id, KIND, name), include_secrets=include_secrets)


def version(ctx: ServiceContext, workspace: str, name: str) -> tuple[int, Any] | None:
    """The datastore's row id and last change, or None where there is no such datastore."""
    with ctx.db.read() as session:
        return rows.version_of(session, workspace, KIND, name)


def get_row(ctx: ServiceContext, workspace: str, name: str) -> ResourceRow:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        return rows.get_row(session, ws_id, KIND, name)


def list_page(
    ctx: ServiceContext,
    workspace: str,
    *,
    include_secrets: bool = False,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[dict[str, Any]]:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        page = rows.list_page(session, ws_id, KIND, max_results=max_results, page_token=page_token)
        return Page(
            [to_body(ctx, workspace, r, include_secrets=include_secrets) for r in page.items],
            page.next_page_token,
        )


def delete(ctx: ServiceContext, workspace: str, name: str) -> None:
    if name in BUILTIN_DATASTORES:
        raise InvalidStateError(f"datastore '{name}' is built in and cannot be deleted")
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        rows.delete(session, rows.get_row(session, ws_id, KIND, name))


def require_datastore(ctx: ServiceContext, workspace: str, datastore: str, where: str) -> None:
    """A reference (``where`` names it) to a datastore of this workspace must name one that exists."""
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if rows.find_row(session, ws_id, KIND, datastore) is None:
            hint = not_found_hint(KIND, datastore, known=rows.names(session, ws_id, KIND))
            raise NotFoundError(
                f"{where} refers to datastore '{datastore}', which does not exist{hint}",
                details={"kind": KIND, "name": datastore},
            )


def _blob_url_parts(url: str) -> tuple[str, str] | None:
    """``(host, path)`` of an Azure blob URL: ``https://<host>/<container>/<path>`` or
    ``wasb[s]://<container>@<host>/<path>``; None for anything else."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("wasb", "wasbs"):
        container, at, host = parts.netloc.partition("@")
        if not at or not container:
            return None
        return host.lower(), f"/{container}{parts.path}"
    if scheme in ("http", "https"):
        return parts.netloc.lower(), parts.path
    return None


def datastore_uri_for_url(ctx: ServiceContext, workspace: str, url: str) -> str | None:
    """The ``azureml://datastores/<name>/paths/...`` URI of a blob URL inside the container of a
    registered ``azure_blob`` datastore, so that it is read with that datastore's credentials
    (as Azure ML does), not fetched anonymously; None when no datastore holds it."""
    target = _blob_url_parts(url)
    if target is None:
        return None
    host, path = target
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        token: str | None = None
        while True:
            page = rows.list_page(session, ws_id, KIND, type_="azure_blob", page_token=token)
            for row in page.items:
                account, container = row.spec.get("account_name"), row.spec.get("container_name")
                if not isinstance(account, str) or not isinstance(container, str):
                    continue
                try:
                    base = _blob_url_parts(blob_account_url(account, row.spec))
                except UserError:
                    continue
                if base is None or base[0] != host:
                    continue
                prefix = f"{base[1].rstrip('/')}/{container}/"
                if path.startswith(prefix):
                    rest = urllib.parse.unquote(path[len(prefix) :])
                    return f"azureml://datastores/{row.name}/paths/{rest}"
            token = page.next_page_token
            if not token:
                return None
