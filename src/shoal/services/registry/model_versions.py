"""MLflow model versions (``model-versions/…``) on model asset versions: create (from a source,
see ``model_sources.py``), get, update, stage transitions, delete, search and tags.
"""

from __future__ import annotations

from typing import Any

from shoal.entities.refs import parse_path
from shoal.errors import NotFoundError, ShoalError, UserError
from shoal.services.assets import versions as assets
from shoal.services.context import ServiceContext
from shoal.services.registry.common import (
    KIND,
    PROP_LINK,
    PROP_MODEL,
    PROP_RUN,
    PROP_SOURCE,
    canonical_stage,
    container_row,
    description_arg,
    limit_arg,
    match_clause,
    model_version_body,
    ms,
    name_arg,
    offset_page,
    stage_arg,
    tags_arg,
    version_arg,
    version_body,
    version_key,
    version_row,
    versions_of,
)
from shoal.services.registry.model_sources import lineage
from shoal.services.storage import files
from shoal.services.tracking.search_grammar import parse_filter, parse_order_by
from shoal.services.tracking.values import list_arg, str_arg
from shoal.services.workspaces import workspace_id
from shoal.store import model_registry as model_rows
from shoal.store import model_registry as registry_rows
from shoal.store.tables import AssetContainerRow, AssetVersionRow, utcnow

MAX_VERSIONS, DEFAULT_VERSIONS = 200_000, 10_000


def _asset_type(ctx: ServiceContext, workspace: str, path: str) -> str:
    """``mlflow_model`` unless the path exists here and is not an MLflow model folder."""
    try:
        ref = parse_path(path)
        if ref.scheme != "datastore":
            return "mlflow_model"
        store = files.readable_store(ctx, workspace, ref.datastore)
    except ShoalError:
        return "mlflow_model"
    rel = ref.path.strip("/")
    if store is None or not store.exists(rel):
        return "mlflow_model"
    return "mlflow_model" if store.isdir(rel) and store.exists(f"{rel}/MLmodel") else "custom_model"


def create_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = name_arg(data)
    tags = tags_arg(data.get("tags"))
    description = description_arg(data)
    found = lineage(ctx, workspace, data)
    with ctx.db.read() as session:
        container_row(session, workspace_id(session, workspace), name)  # MLflow: the model must exist
    properties = {PROP_SOURCE: found.source}
    if found.run_id:
        properties[PROP_RUN] = found.run_id
    if found.model_id:
        properties[PROP_MODEL] = found.model_id
    if data.get("run_link"):
        properties[PROP_LINK] = str(data["run_link"])
    spec: dict[str, Any] = {
        "type": _asset_type(ctx, workspace, found.path),
        "path": found.path,
        "tags": tags,
        "properties": properties,
    }
    if description:
        spec["description"] = description
    server_fields = {"job_name": found.run_id} if found.run_id else None
    created = assets.create(ctx, workspace, KIND, name, spec, None, server_fields=server_fields)
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        row = version_row(session, container, str(created["version"]))
        return {"model_version": model_version_body(session, container, row)}


def _get_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        return {"model_version": model_version_body(session, container, version_row(session, container, version))}


def get_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _get_version(ctx, workspace, data)


def update_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    description = description_arg(data)
    if description is not None:
        assets.update(ctx, workspace, KIND, name, version, {"description": description})
    return _get_version(ctx, workspace, data)


def transition_model_version_stage(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    stage = stage_arg(data.get("stage"))
    archive = str(data.get("archive_existing_versions", "")).lower() == "true"
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        row = version_row(session, container, version)
        row.stage = None if stage == "None" else stage
        row.updated_at = utcnow()
        if archive and stage in ("Staging", "Production"):
            for other in versions_of(session, [container.id]):
                if other.id != row.id and canonical_stage(other.stage) == stage:
                    other.stage = "Archived"
                    other.updated_at = utcnow()
        session.flush()
        return {"model_version": model_version_body(session, container, row)}


def delete_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        model_rows.delete_version(session, version_row(session, container, version))
        container.updated_at = utcnow()
    return {}


def _version_fields(container: AssetContainerRow, row: AssetVersionRow) -> dict[str, Any]:
    props = row.spec.get("properties") or {}
    return {
        "name": container.name,
        "version_number": row.version,
        "run_id": props.get(PROP_RUN) or row.spec.get("job_name"),
        "source_path": props.get(PROP_SOURCE) or row.spec.get("path"),
        "model_id": props.get(PROP_MODEL),
        "current_stage": canonical_stage(row.stage),
        "creation_timestamp": ms(row.created_at),
        "last_updated_timestamp": ms(row.updated_at),
    }


def search_model_versions(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = limit_arg(data, DEFAULT_VERSIONS, MAX_VERSIONS)
    clauses = parse_filter(data.get("filter"))
    attributes = ("name", "version_number", "run_id", "source_path", "model_id", "current_stage")
    for c in clauses:
        if not (c.kind == "tag" or (c.kind == "attribute" and c.key in attributes)):
            raise UserError(f"Invalid attribute key '{c.key}' specified. Valid keys are {list(attributes)}")
    orders = parse_order_by(list_arg(data.get("order_by")))
    sortable = ("name", "version_number", "creation_timestamp", "last_updated_timestamp", "run_id", "source_path")
    for o in orders:
        if o.kind != "attribute" or o.key not in sortable:
            raise UserError(f"Invalid order by key '{o.key}' specified. Valid keys are {list(sortable)}")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        # `name = 'x'` narrows the query; every clause is then checked on each version.
        exact = [str(c.value) for c in clauses if c.kind == "attribute" and c.key == "name" and c.op == "="]
        found = []
        for container, row in registry_rows.model_versions(session, ws_id, name=exact[0] if exact else None):
            fields = _version_fields(container, row)
            tags = row.spec.get("tags") or {}
            if all(match_clause(fields.get(c.key) if c.kind == "attribute" else tags.get(c.key), c) for c in clauses):
                found.append((container, row, fields))
        found.sort(key=lambda t: (t[0].name, _neg(version_key(t[1]))))
        for o in reversed(orders):
            if o.key == "version_number":
                found.sort(key=lambda t: version_key(t[1]), reverse=not o.ascending)
            else:
                found.sort(key=lambda t, k=o.key: t[2].get(k) or "", reverse=not o.ascending)
        page, token = offset_page(found, data, limit)
        aliases = model_rows.aliases_of(session, list({c.id for c, _, _ in page}))
        versions = [version_body(c, r, [a for a, v in aliases.get(c.id, []) if v.id == r.id]) for c, r, _ in page]
    body: dict[str, Any] = {"model_versions": versions}
    if token:
        body["next_page_token"] = token
    return body


def _neg(key: tuple[int, int, str]) -> tuple[int, int, str]:
    # Versions newest first within a name: numbers descending, then other versions.
    return (key[0], -key[1], key[2])


def _set_version_tags(ctx: ServiceContext, workspace: str, data: dict[str, Any], change: Any) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        row = version_row(session, container, version)
        tags = dict(row.spec.get("tags") or {})
    assets.update(ctx, workspace, KIND, name, version, {"tags": change(tags)})
    return {}


def set_model_version_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    new = tags_arg([{"key": data.get("key"), "value": data.get("value")}])
    return _set_version_tags(ctx, workspace, data, lambda tags: {**tags, **new})


def delete_model_version_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = str_arg(data, "key")

    def drop(tags: dict[str, str]) -> dict[str, str]:
        if key not in tags:
            raise NotFoundError(f"No tag with name: {key} for model version {data.get('name')}/{data.get('version')}")
        return {k: v for k, v in tags.items() if k != key}

    return _set_version_tags(ctx, workspace, data, drop)
