"""MLflow registered models (``registered-models/…``) on model asset names, with their tags and
aliases.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import IntegrityError

from shoal.errors import ConflictError, NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.registry.common import (
    KIND,
    STAGES,
    canonical_stage,
    container_row,
    description_arg,
    limit_arg,
    match_clause,
    model_body,
    model_version_body,
    ms,
    name_arg,
    offset_page,
    registered_model_body,
    stage_arg,
    tags_arg,
    version_arg,
    version_body,
    version_row,
    versions_of,
)
from shoal.services.tracking.search_grammar import parse_filter, parse_order_by
from shoal.services.tracking.values import list_arg, str_arg
from shoal.services.workspaces import workspace_id
from shoal.store import assets as asset_rows
from shoal.store import model_registry as model_rows
from shoal.store import model_registry as registry_rows
from shoal.store.tables import AssetVersionRow, utcnow

MAX_MODELS, DEFAULT_MODELS = 1000, 100


ALIAS = re.compile(r"^[\w\-]*$")


VERSION_ALIAS = re.compile(r"^[vV]\d+$")


MAX_ALIAS = 255


def create_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = name_arg(data)
    tags = tags_arg(data.get("tags"))
    description = description_arg(data)
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            if asset_rows.find_container(session, ws_id, KIND, name) is not None:
                raise ConflictError(f"Registered Model (name={name}) already exists.", details={"name": name})
            container = asset_rows.ensure_container(session, ws_id, KIND, name)
            container.tags = tags
            container.description = description
            session.flush()
            return {"registered_model": model_body(container, [], [])}
    except IntegrityError as exc:
        raise ConflictError(f"Registered Model (name={name}) already exists.", details={"name": name}) from exc


def get_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "name")
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        return {"registered_model": registered_model_body(session, container)}


def update_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "name")
    description = description_arg(data)
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        if description is not None:
            container.description = description
        container.updated_at = utcnow()
        session.flush()
        return {"registered_model": registered_model_body(session, container)}


def rename_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "name")
    new_name = name_arg(data, "new_name")
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            container = container_row(session, ws_id, name)
            if new_name != name and asset_rows.find_container(session, ws_id, KIND, new_name) is not None:
                raise ConflictError(f"Registered Model (name={new_name}) already exists.", details={"name": new_name})
            container.name = new_name
            container.updated_at = utcnow()
            session.flush()
            return {"registered_model": registered_model_body(session, container)}
    except IntegrityError as exc:
        raise ConflictError(f"Registered Model (name={new_name}) already exists.") from exc


def delete_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """MLflow's delete: the name and all its versions go (their files stay with their runs)."""
    name = str_arg(data, "name")
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        for row in versions_of(session, [container.id], archived=True):
            model_rows.delete_version(session, row)
        session.delete(container)
    return {}


def set_registered_model_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "name")
    tags = tags_arg([{"key": data.get("key"), "value": data.get("value")}])
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        container.tags = {**(container.tags or {}), **tags}
        container.updated_at = utcnow()
    return {}


def delete_registered_model_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, key = str_arg(data, "name"), str_arg(data, "key")
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        if key not in (container.tags or {}):
            raise NotFoundError(f"No tag with name: {key} in registered model {name}")
        container.tags = {k: v for k, v in container.tags.items() if k != key}
        container.updated_at = utcnow()
    return {}


def search_registered_models(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = limit_arg(data, DEFAULT_MODELS, MAX_MODELS)
    clauses = parse_filter(data.get("filter"))
    for c in clauses:
        if not (c.kind == "tag" or (c.kind == "attribute" and c.key == "name")):
            raise UserError(f"Invalid attribute key '{c.key}' specified. Valid keys are '{{'name'}}'")
    orders = parse_order_by(list_arg(data.get("order_by")))
    fields = {"name": "name", "timestamp": "updated", "last_updated_timestamp": "updated"}
    for o in orders:
        if o.kind != "attribute" or o.key not in fields:
            raise UserError(
                f"Invalid order by key '{o.key}' specified. Valid keys are ['name', 'timestamp', "
                "'last_updated_timestamp']"
            )
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        # `name = 'x'` narrows the query; every clause is then checked on each model.
        exact = [str(c.value) for c in clauses if c.kind == "attribute" and c.op == "="]
        candidates = (
            registry_rows.models(session, ws_id, name=exact[0]) if exact else registry_rows.models(session, ws_id)
        )
        found = [
            row
            for row in candidates
            if all(match_clause(row.name if c.kind == "attribute" else (row.tags or {}).get(c.key), c) for c in clauses)
        ]
        found.sort(key=lambda r: r.name)
        for o in reversed(orders):
            if fields[o.key] == "updated":
                found.sort(key=lambda r: ms(r.updated_at), reverse=not o.ascending)
            else:
                found.sort(key=lambda r: r.name, reverse=not o.ascending)
        page, token = offset_page(found, data, limit)
        ids = [c.id for c in page]
        versions: dict[int, list[AssetVersionRow]] = {i: [] for i in ids}
        for row in versions_of(session, ids):
            versions[row.container_id].append(row)
        aliases = model_rows.aliases_of(session, ids)
        body: dict[str, Any] = {"registered_models": [model_body(c, versions[c.id], aliases[c.id]) for c in page]}
    if token:
        body["next_page_token"] = token
    return body


def get_latest_versions(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "name")
    wanted = {stage_arg(s) for s in list_arg(data.get("stages"))} or set(STAGES.values())
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        latest: dict[str, AssetVersionRow] = {}
        for row in versions_of(session, [container.id]):
            latest[canonical_stage(row.stage)] = row
        aliases = model_rows.aliases_of(session, [container.id])[container.id]
        out = [
            version_body(container, row, [a for a, v in aliases if v.id == row.id])
            for stage, row in latest.items()
            if stage in wanted
        ]
    return {"model_versions": out}


# -- aliases --------------------------------------------------------------------------------


def _alias_arg(data: dict[str, Any], *, new: bool = False) -> str:
    alias = str_arg(data, "alias")
    if not ALIAS.match(alias):
        raise UserError(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        )
    if len(alias) > MAX_ALIAS:
        raise UserError(f"Registered model alias name exceeds the maximum length of {MAX_ALIAS}")
    if new and alias.lower() == "latest":
        raise UserError("'latest' alias name (case insensitive) is reserved.")
    if new and VERSION_ALIAS.match(alias):
        raise UserError(f"Version alias name '{alias}' is reserved.")
    return alias


def set_registered_model_alias(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    alias = _alias_arg(data, new=True)
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        row = version_row(session, container, version)
        model_rows.set_alias(session, container.id, alias, row.id)
        container.updated_at = utcnow()
    return {}


def delete_registered_model_alias(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, alias = str_arg(data, "name"), _alias_arg(data)
    with ctx.db.write() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        model_rows.delete_alias(session, container.id, alias)
        container.updated_at = utcnow()
    return {}


def get_model_version_by_alias(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, alias = str_arg(data, "name"), _alias_arg(data)
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        row = model_rows.find_alias(session, container.id, alias)
        if row is None:
            raise NotFoundError(f"Registered model alias {alias} not found.", details={"name": name, "alias": alias})
        return {"model_version": model_version_body(session, container, row)}
