"""Reading versioned assets (model, data, environment, component, code): one version by number
or label, as the body the API returns. Job submission resolves its references through here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shoal.entities.kind_names import VERSIONED_KINDS
from shoal.entities.kinds import KINDS
from shoal.entities.refs import parse_asset_ref
from shoal.errors import NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context
from shoal.services.workspaces import workspace_id
from shoal.store import assets as rows
from shoal.store.tables import AssetContainerRow, AssetVersionRow


def check_kind(kind: str) -> None:
    if kind not in VERSIONED_KINDS:
        raise NotFoundError(f"unknown asset kind '{kind}'; known: {', '.join(VERSIONED_KINDS)}")


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def to_body(workspace: str, container: AssetContainerRow, row: AssetVersionRow) -> dict[str, Any]:
    body = dict(row.spec)
    body["name"] = container.name
    body["version"] = row.version
    if row.stage is not None:
        body["stage"] = row.stage
    body["id"] = arm_id(workspace, KINDS[container.kind].plural, container.name, "versions", row.version)
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    if row.archived or container.archived:
        body["archived"] = True
    return body


def is_curated_environment(ref: str) -> bool:
    bare = ref.split(":", 1)[1] if ref.startswith("azureml:") and not ref.startswith("azureml://") else ref
    return bare.startswith("AzureML-") or ref.startswith("azureml://registries/")


def check_asset_reference(ctx: ServiceContext, workspace: str, kind: str, ref: str, where: str) -> None:
    """A reference to an asset of this workspace must name something that exists."""
    if kind == "environment" and is_curated_environment(ref):
        return  # curated and registry environments are resolved when a job prepares them
    parsed = parse_asset_ref(ref, kind=kind)
    if parsed.registry:
        return
    try:
        label = None if parsed.version else (parsed.label or "latest")
        resolve(ctx, workspace, kind, parsed.name, version=parsed.version, label=label)
    except NotFoundError as exc:
        raise NotFoundError(f"{where} refers to {ref!r}: {exc.message}", details=exc.details) from exc


def resolve(
    ctx: ServiceContext,
    workspace: str,
    kind: str,
    name: str,
    *,
    version: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Get one version by number or by label (``latest``; ``default`` for components)."""
    check_kind(kind)
    if version is not None and label is not None:
        raise UserError("give either a version or a label, not both")
    if version is None and label is None:
        raise UserError(f"{kind} '{name}': a version or a label is required")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        container = rows.get_container(session, ws_id, kind, name)
        if version is not None:
            row = rows.get_version(session, container, version)
        elif label == "latest" or (label == "default" and kind == "component"):
            row = rows.latest_version(session, container)
        else:
            raise UserError(
                f"unknown label '{label}'; supported: latest" + (", default" if kind == "component" else "")
            )
        return to_body(workspace, container, row)
