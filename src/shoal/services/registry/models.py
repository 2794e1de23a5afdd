"""The MLflow model registry of a workspace (``registered-models/…``, ``model-versions/…``) on
Shoal's own model assets.

A registered model is a model asset name (its container holds the description, the tags and the
aliases); a model version is a model asset version whose ``path`` is where its files are: for a
model MLflow logged, the logged model's or the run's folder in ``workspaceartifactstore``. So
``shoal model list/show/download`` show what MLflow registered, MLflow sees every model asset,
and ``models:/<name>/<version>`` (or ``@alias``) loads through the artifact proxy.

MLflow stages map onto the asset's ``stage``; tags of a version are the asset's tags; what MLflow
knows of a version's origin (source URI, run, logged model, run link) is kept in its properties
(``mlflow.source``, ``mlflow.run_id``, ``mlflow.model_id``, ``mlflow.run_link``).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shoal.entities.refs import parse_path
from shoal.entities.validation import ASSET_NAME
from shoal.errors import ConflictError, NotFoundError, ShoalError, SpecError, UserError
from shoal.services.assets import versions as assets
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.references import resolution as job_references
from shoal.services.storage import files
from shoal.services.tracking import logged_models as lm
from shoal.services.tracking import runs as tr
from shoal.services.tracking.search_grammar import Clause, parse_filter, parse_order_by
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import assets as asset_rows
from shoal.store import registry as alias_rows
from shoal.store.paging import encode_token
from shoal.store.tables import AssetContainerRow, AssetVersionRow, JobRow, utcnow

KIND = "model"
STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
MAX_MODELS, DEFAULT_MODELS = 1000, 100
MAX_VERSIONS, DEFAULT_VERSIONS = 200_000, 10_000
ALIAS = re.compile(r"^[\w\-]*$")
VERSION_ALIAS = re.compile(r"^[vV]\d+$")
MAX_ALIAS = 255
MAX_DESCRIPTION = 5000
ARTIFACTS = "mlflow-artifacts"
PROXY_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")
PROP_SOURCE, PROP_RUN, PROP_MODEL, PROP_LINK = "mlflow.source", "mlflow.run_id", "mlflow.model_id", "mlflow.run_link"


# -- small helpers --------------------------------------------------------------------------


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _name(data: dict[str, Any], key: str = "name") -> str:
    name = tr._str(data, key)
    try:
        return ASSET_NAME.check(name)
    except ValueError as exc:
        raise UserError(f"Invalid registered model name {name!r}: {exc}") from exc


def _version_arg(data: dict[str, Any]) -> str:
    value = data.get("version")
    if value is None or value == "":
        raise UserError("Missing value for required parameter 'version'.")
    return str(value)


def _container(session: Session, ws_id: int, name: str) -> AssetContainerRow:
    row = asset_rows.find_container(session, ws_id, KIND, name)
    if row is None:
        raise NotFoundError(f"Registered Model with name={name} not found", details={"name": name})
    return row


def _version(session: Session, container: AssetContainerRow, version: str) -> AssetVersionRow:
    row = asset_rows.find_version(session, container.id, version)
    if row is None:
        raise NotFoundError(
            f"Model Version (name={container.name}, version={version}) not found",
            details={"name": container.name, "version": version},
        )
    return row


def _versions(session: Session, container_ids: list[int], *, archived: bool = False) -> list[AssetVersionRow]:
    if not container_ids:
        return []
    query = select(AssetVersionRow).where(AssetVersionRow.container_id.in_(container_ids))
    if not archived:
        query = query.where(AssetVersionRow.archived.is_(False))
    return list(session.scalars(query.order_by(AssetVersionRow.id)))


def canonical_stage(stage: str | None) -> str:
    if not stage:
        return "None"
    return STAGES.get(stage.lower(), stage)


def _stage_arg(value: Any) -> str:
    stage = STAGES.get(str(value or "").strip().lower())
    if stage is None:
        raise UserError(f"Invalid Model Version stage: {value}. Value must be one of {', '.join(STAGES.values())}.")
    return stage


def _tags(items: Any, limit: int = tr.MAX_TAG_VALUE) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tr._kv(items):
        key = tr._check_key(item.get("key"), "tag")
        out[key] = tr._value(item.get("value", ""), limit, "tag", key)
    return out


def _description(data: dict[str, Any]) -> str | None:
    value = data.get("description")
    if value is None:
        return None
    value = str(value)
    if len(value) > MAX_DESCRIPTION:
        raise UserError(f"description had length {len(value)}, which exceeded length limit of {MAX_DESCRIPTION}")
    return value


def _version_key(row: AssetVersionRow) -> tuple[int, int, str]:
    return (0, int(row.version), "") if row.version.isdigit() else (1, 0, row.version)


# -- bodies ---------------------------------------------------------------------------------


def _mv_body(container: AssetContainerRow, row: AssetVersionRow, aliases: list[str]) -> dict[str, Any]:
    spec = row.spec
    props = spec.get("properties") or {}
    body: dict[str, Any] = {
        "name": container.name,
        "version": row.version,
        "creation_timestamp": _ms(row.created_at),
        "last_updated_timestamp": _ms(row.updated_at),
        "user_id": "",
        "current_stage": canonical_stage(row.stage),
        "source": props.get(PROP_SOURCE) or props.get("shoal.source_path") or spec.get("path", ""),
        "status": "READY",
        "tags": [{"key": k, "value": v} for k, v in (spec.get("tags") or {}).items()],
        "aliases": aliases,
    }
    if spec.get("description"):
        body["description"] = spec["description"]
    if props.get(PROP_RUN) or spec.get("job_name"):
        body["run_id"] = props.get(PROP_RUN) or spec["job_name"]
    if props.get(PROP_LINK):
        body["run_link"] = props[PROP_LINK]
    if props.get(PROP_MODEL):
        body["model_id"] = props[PROP_MODEL]
    return body


def _rm_body(
    container: AssetContainerRow, versions: list[AssetVersionRow], aliases: list[tuple[str, AssetVersionRow]]
) -> dict[str, Any]:
    latest: dict[str, AssetVersionRow] = {}
    for row in versions:  # in creation order: the last of each stage wins
        if not row.archived:
            latest[canonical_stage(row.stage)] = row
    updated = max([container.updated_at, *(v.updated_at for v in versions)], key=_ms)
    body: dict[str, Any] = {
        "name": container.name,
        "creation_timestamp": _ms(container.created_at),
        "last_updated_timestamp": _ms(updated),
        "user_id": "",
        "latest_versions": [_mv_body(container, v, []) for v in latest.values()],
        "tags": [{"key": k, "value": v} for k, v in (container.tags or {}).items()],
        "aliases": [{"alias": a, "version": v.version} for a, v in aliases],
    }
    if container.description:
        body["description"] = container.description
    return body


def _registered_model(session: Session, container: AssetContainerRow) -> dict[str, Any]:
    versions = _versions(session, [container.id])
    return _rm_body(container, versions, alias_rows.aliases_of(session, [container.id])[container.id])


def _model_version(session: Session, container: AssetContainerRow, row: AssetVersionRow) -> dict[str, Any]:
    aliases = [a for a, v in alias_rows.aliases_of(session, [container.id])[container.id] if v.id == row.id]
    return _mv_body(container, row, aliases)


# -- registered models ----------------------------------------------------------------------


def create_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = _name(data)
    tags = _tags(data.get("tags"))
    description = _description(data)
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            if asset_rows.find_container(session, ws_id, KIND, name) is not None:
                raise ConflictError(f"Registered Model (name={name}) already exists.", details={"name": name})
            container = asset_rows.ensure_container(session, ws_id, KIND, name)
            container.tags = tags
            container.description = description
            session.flush()
            return {"registered_model": _rm_body(container, [], [])}
    except IntegrityError as exc:
        raise ConflictError(f"Registered Model (name={name}) already exists.", details={"name": name}) from exc


def get_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = tr._str(data, "name")
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        return {"registered_model": _registered_model(session, container)}


def update_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = tr._str(data, "name")
    description = _description(data)
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        if description is not None:
            container.description = description
        container.updated_at = utcnow()
        session.flush()
        return {"registered_model": _registered_model(session, container)}


def rename_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = tr._str(data, "name")
    new_name = _name(data, "new_name")
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            container = _container(session, ws_id, name)
            if new_name != name and asset_rows.find_container(session, ws_id, KIND, new_name) is not None:
                raise ConflictError(f"Registered Model (name={new_name}) already exists.", details={"name": new_name})
            container.name = new_name
            container.updated_at = utcnow()
            session.flush()
            return {"registered_model": _registered_model(session, container)}
    except IntegrityError as exc:
        raise ConflictError(f"Registered Model (name={new_name}) already exists.") from exc


def delete_registered_model(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    """MLflow's delete: the name and all its versions go (their files stay with their runs)."""
    name = tr._str(data, "name")
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        for row in _versions(session, [container.id], archived=True):
            alias_rows.delete_version(session, row)
        session.delete(container)
    return {}


def set_registered_model_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = tr._str(data, "name")
    tags = _tags([{"key": data.get("key"), "value": data.get("value")}])
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        container.tags = {**(container.tags or {}), **tags}
        container.updated_at = utcnow()
    return {}


def delete_registered_model_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, key = tr._str(data, "name"), tr._str(data, "key")
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        if key not in (container.tags or {}):
            raise NotFoundError(f"No tag with name: {key} in registered model {name}")
        container.tags = {k: v for k, v in container.tags.items() if k != key}
        container.updated_at = utcnow()
    return {}


def _match(value: Any, c: Clause) -> bool:
    """MLflow's registry filters: a missing tag or field matches ``!=`` and ``NOT IN`` (so the
    client's ``tags.`mlflow.prompt.is_prompt` != 'true'`` keeps every model)."""
    if value is None:
        return c.op in ("!=", "NOT IN")
    if isinstance(c.value, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return lm._match_num(number, c)  # type: ignore[arg-type]
    return tr._match_py(str(value), c)


def _offset_page(items: list[Any], data: dict[str, Any], limit: int) -> tuple[list[Any], str | None]:
    offset = tr._offset(data.get("page_token"))
    page = items[offset : offset + limit]
    token = encode_token([offset + limit]) if offset + limit < len(items) else None
    return page, token


def _limit(data: dict[str, Any], default: int, maximum: int) -> int:
    limit = tr._int(data, "max_results", default) or default
    if not 1 <= limit <= maximum:
        raise UserError(f"Invalid value for max_results. It must be at most {maximum}, but got value {limit}")
    return limit


def search_registered_models(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = _limit(data, DEFAULT_MODELS, MAX_MODELS)
    clauses = parse_filter(data.get("filter"))
    for c in clauses:
        if not (c.kind == "tag" or (c.kind == "attribute" and c.key == "name")):
            raise UserError(f"Invalid attribute key '{c.key}' specified. Valid keys are '{{'name'}}'")
    orders = parse_order_by(tr._list(data.get("order_by")))
    fields = {"name": "name", "timestamp": "updated", "last_updated_timestamp": "updated"}
    for o in orders:
        if o.kind != "attribute" or o.key not in fields:
            raise UserError(
                f"Invalid order by key '{o.key}' specified. Valid keys are ['name', 'timestamp', "
                "'last_updated_timestamp']"
            )
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        query = select(AssetContainerRow).where(
            AssetContainerRow.workspace_id == ws_id,
            AssetContainerRow.kind == KIND,
            AssetContainerRow.archived.is_(False),
        )
        for c in clauses:
            if c.kind == "attribute" and c.op == "=":
                query = query.where(AssetContainerRow.name == str(c.value))
        found = [
            row
            for row in session.scalars(query)
            if all(_match(row.name if c.kind == "attribute" else (row.tags or {}).get(c.key), c) for c in clauses)
        ]
        found.sort(key=lambda r: r.name)
        for o in reversed(orders):
            if fields[o.key] == "updated":
                found.sort(key=lambda r: _ms(r.updated_at), reverse=not o.ascending)
            else:
                found.sort(key=lambda r: r.name, reverse=not o.ascending)
        page, token = _offset_page(found, data, limit)
        ids = [c.id for c in page]
        versions: dict[int, list[AssetVersionRow]] = {i: [] for i in ids}
        for row in _versions(session, ids):
            versions[row.container_id].append(row)
        aliases = alias_rows.aliases_of(session, ids)
        body: dict[str, Any] = {"registered_models": [_rm_body(c, versions[c.id], aliases[c.id]) for c in page]}
    if token:
        body["next_page_token"] = token
    return body


def get_latest_versions(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = tr._str(data, "name")
    wanted = {_stage_arg(s) for s in tr._list(data.get("stages"))} or set(STAGES.values())
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        latest: dict[str, AssetVersionRow] = {}
        for row in _versions(session, [container.id]):
            latest[canonical_stage(row.stage)] = row
        aliases = alias_rows.aliases_of(session, [container.id])[container.id]
        out = [
            _mv_body(container, row, [a for a, v in aliases if v.id == row.id])
            for stage, row in latest.items()
            if stage in wanted
        ]
    return {"model_versions": out}


# -- model versions: where a source is ------------------------------------------------------


@dataclass(frozen=True)
class Lineage:
    """What a model version's source stands for: the asset path, and the run and logged model
    it came from (when known)."""

    source: str
    path: str
    run_id: str | None
    model_id: str | None


def _invalid_source(source: str, why: str) -> UserError:
    return UserError(f"Invalid model version source: '{source[:500]}'. {why}", details={"source": source[:500]})


def _artifact_path(source: str) -> str | None:
    """The artifact-store path of an ``mlflow-artifacts:`` URI (or of an http(s) URL of an
    artifact proxy), else None."""
    parsed = urllib.parse.urlsplit(source)
    parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
    if parsed.scheme.lower() == ARTIFACTS:
        return "/".join(parts)
    if parsed.scheme.lower() in ("http", "https"):
        for i in range(len(parts) - len(PROXY_ROUTE) + 1):
            if tuple(parts[i : i + len(PROXY_ROUTE)]) == PROXY_ROUTE:
                return "/".join(parts[i + len(PROXY_ROUTE) :])
    return None


def _store_uri(path: str) -> str:
    return f"azureml://datastores/{job_state.ARTIFACTS_DATASTORE}/paths/{path.strip('/')}"


def _within(path: str, root: str) -> bool:
    path, root = path.strip("/"), root.strip("/")
    return path == root or path.startswith(root + "/")


def _parse_models_uri(source: str) -> tuple[str | None, str | None, str | None]:
    """``models:/<model id>`` → (id, None, None); ``models:/<name>/<version|stage|latest>`` →
    (None, name, version); ``models:/<name>@<alias>`` → (None, name, "@alias")."""
    parsed = urllib.parse.urlsplit(source)
    if parsed.netloc:
        raise _invalid_source(source, "Registered model sources must use this workspace's registry (no host).")
    parts = [p for p in parsed.path.split("/") if p]
    if len(parts) == 1 and "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        return None, name, "@" + alias
    if len(parts) == 1:
        return parts[0], None, None
    if len(parts) == 2:
        return None, parts[0], parts[1]
    raise _invalid_source(source, "Expected models:/<model id>, models:/<name>/<version> or models:/<name>@<alias>.")


def _logged_model_location(session: Session, ws_id: int, model_id: str, source: str) -> tuple[str, str | None]:
    try:
        row = lm._row(session, ws_id, model_id)
    except NotFoundError as exc:
        raise _invalid_source(source, f"Logged model '{model_id}' does not exist in this workspace.") from exc
    if not row.artifact_location.startswith(lm.ARTIFACTS_PREFIX):
        raise _invalid_source(source, f"Logged model '{model_id}' has no files in this workspace.")
    run = session.scalar(select(JobRow.name).where(JobRow.id == row.job_id)) if row.job_id is not None else None
    return row.artifact_location[len(lm.ARTIFACTS_PREFIX) :], run


def lineage(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> Lineage:
    """Resolve a ``model-versions/create`` request's source, checked as MLflow's server checks
    it: a ``runs:/`` source names the run given as ``run_id``; an artifact-store URI lies inside
    the root of the run (``run_id``) or logged model (``model_id``) given; a local path is refused
    (this server cannot read the client's disk)."""
    source = tr._str(data, "source")
    run_id = str(data.get("run_id") or "") or None
    model_id = str(data.get("model_id") or "") or None
    if any(p == ".." for p in urllib.parse.unquote(source).replace("\\", "/").split("/")):
        raise _invalid_source(source, "It may not contain '..' segments.")
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        run_row, model_root = None, ""
        if run_id:
            tr._no_separator(run_id, "run_id")
            run_row = session.scalar(select(JobRow).where(JobRow.workspace_id == ws_id, JobRow.name == run_id))
            if run_row is None:
                raise _invalid_source(source, f"Run '{run_id}' (run_id) does not exist in this workspace.")
        if model_id and scheme != "models":
            model_root, _ = _logged_model_location(session, ws_id, tr._no_separator(model_id, "model_id"), source)
        if scheme == "models":
            ref_id, name, version = _parse_models_uri(source)
            if ref_id is not None:
                if model_id and model_id != ref_id:
                    raise _invalid_source(source, "The model_id request parameter must name the same logged model.")
                root, run = _logged_model_location(session, ws_id, ref_id, source)
                return Lineage(source, _store_uri(root), run_id or run, ref_id)
            assert name is not None and version is not None
            container = _container(session, ws_id, name)
            if version.startswith("@"):
                row = alias_rows.find_alias(session, container.id, version[1:])
                if row is None:
                    raise NotFoundError(f"Registered model alias {version[1:]} not found.")
            elif version.isdigit():
                row = _version(session, container, version)
            else:
                row = _latest_in_stage(session, container, version)
            props = row.spec.get("properties") or {}
            return Lineage(
                f"models:/{name}/{row.version}",
                row.spec["path"],
                run_id or props.get(PROP_RUN) or row.spec.get("job_name"),
                model_id or props.get(PROP_MODEL),
            )
    if scheme == "runs":
        ref = parse_path(source)
        if run_id and ref.run_id != run_id:
            raise _invalid_source(source, "The run_id request parameter must name the run of the runs:/ URI.")
        try:
            path, job = job_references.resolve_path_reference(
                ctx, workspace, KIND, source, f"model version source {source!r}"
            )
        except NotFoundError as exc:
            raise _invalid_source(source, exc.message) from exc
        return Lineage(source, path, job, model_id)
    artifact = _artifact_path(source)
    if artifact is not None:
        if model_id and _within(artifact, model_root):
            return Lineage(source, _store_uri(artifact), run_id, model_id)
        if run_row is not None and _within(artifact, job_state.artifacts_prefix(run_row.name)):
            return Lineage(source, _store_uri(artifact), run_id, model_id)
        raise _invalid_source(
            source,
            "An artifact URI must lie inside the artifacts of the run (run_id) or the logged model (model_id) given.",
        )
    try:
        ref = parse_path(source)
    except SpecError as exc:
        raise _invalid_source(source, exc.message) from exc
    if ref.scheme == "local":
        raise _invalid_source(
            source,
            "A local path cannot be registered on a Shoal server: log the model to a run first and register "
            "runs:/<run id>/<path> or models:/<model id>.",
        )
    if ref.scheme in ("job_output", "datastore", "asset"):
        path, job = job_references.resolve_path_reference(
            ctx, workspace, KIND, source, f"model version source {source!r}"
        )
        return Lineage(source, path, run_id or job, model_id)
    return Lineage(source, source, run_id, model_id)  # http(s) and cloud URLs are kept as references


def _latest_in_stage(session: Session, container: AssetContainerRow, stage: str) -> AssetVersionRow:
    versions = _versions(session, [container.id])
    if stage.lower() != "latest":
        wanted = _stage_arg(stage)
        versions = [v for v in versions if canonical_stage(v.stage) == wanted]
    if not versions:
        raise NotFoundError(f"No versions of model '{container.name}' in stage '{stage}'.")
    return max(versions, key=_version_key)


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


# -- model versions -------------------------------------------------------------------------


def create_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = _name(data)
    tags = _tags(data.get("tags"))
    description = _description(data)
    found = lineage(ctx, workspace, data)
    with ctx.db.read() as session:
        _container(session, workspace_id(session, workspace), name)  # MLflow: the model must exist
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
        container = _container(session, workspace_id(session, workspace), name)
        row = _version(session, container, str(created["version"]))
        return {"model_version": _model_version(session, container, row)}


def _get_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = tr._str(data, "name"), _version_arg(data)
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        return {"model_version": _model_version(session, container, _version(session, container, version))}


def get_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _get_version(ctx, workspace, data)


def update_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = tr._str(data, "name"), _version_arg(data)
    description = _description(data)
    if description is not None:
        assets.update(ctx, workspace, KIND, name, version, {"description": description})
    return _get_version(ctx, workspace, data)


def transition_model_version_stage(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = tr._str(data, "name"), _version_arg(data)
    stage = _stage_arg(data.get("stage"))
    archive = str(data.get("archive_existing_versions", "")).lower() == "true"
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        row = _version(session, container, version)
        row.stage = None if stage == "None" else stage
        row.updated_at = utcnow()
        if archive and stage in ("Staging", "Production"):
            for other in _versions(session, [container.id]):
                if other.id != row.id and canonical_stage(other.stage) == stage:
                    other.stage = "Archived"
                    other.updated_at = utcnow()
        session.flush()
        return {"model_version": _model_version(session, container, row)}


def delete_model_version(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, version = tr._str(data, "name"), _version_arg(data)
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        alias_rows.delete_version(session, _version(session, container, version))
        container.updated_at = utcnow()
    return {}


FILES = "model-files"


def download_uri(path: str, name: str, version: str, tracking_uri: str | None = None) -> str:
    """Where an MLflow client fetches a version's files: the artifact proxy for the artifact
    store (every model MLflow logged); for a model asset on another datastore (``shoal model
    create`` uploads to ``workspaceblobstore``), the read-only file routes of that version under
    the tracking URI; else (a web or cloud URL) the path itself."""
    try:
        ref = parse_path(path)
    except SpecError:
        return path
    if ref.scheme == "datastore" and ref.datastore == job_state.ARTIFACTS_DATASTORE:
        return f"{ARTIFACTS}:/{ref.path.strip('/')}"
    if ref.scheme == "datastore" and tracking_uri:
        quoted = f"{urllib.parse.quote(name, safe='')}/{urllib.parse.quote(version, safe='')}"
        return f"{tracking_uri.rstrip('/')}/{FILES}/{quoted}/api/2.0/mlflow-artifacts/artifacts"
    return path


def get_model_version_download_uri(
    ctx: ServiceContext, workspace: str, data: dict[str, Any], tracking_uri: str | None = None
) -> dict[str, Any]:
    name, version = tr._str(data, "name"), _version_arg(data)
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        row = _version(session, container, version)
        return {"artifact_uri": download_uri(str(row.spec["path"]), name, version, tracking_uri)}


def _version_root(ctx: ServiceContext, workspace: str, name: str, version: str) -> tuple[Any, str]:
    """The store and folder of a model version's files (any datastore of the workspace)."""
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        path = str(_version(session, container, version).spec["path"])
    ref = parse_path(path)
    if ref.scheme != "datastore":
        raise NotFoundError(f"Model version {name}/{version} is not stored in this workspace ({path})")
    return files.store_for(ctx, workspace, ref.datastore), ref.path.strip("/")


def _inside(root: str, sub: str | None) -> str:
    sub = safe_relpath(sub or "", allow_empty=True)
    return f"{root}/{sub}" if sub else root


def list_version_files(
    ctx: ServiceContext, workspace: str, name: str, version: str, path: str | None
) -> dict[str, Any]:
    """MLflow's artifact listing (immediate children by base name) of a version's folder."""
    store, root = _version_root(ctx, workspace, name, version)
    rel = _inside(root, path)
    if not store.isdir(rel):
        return {}
    out = []
    for child in store.list_dir(rel):
        full = f"{rel}/{child}"
        if store.isdir(full):
            out.append({"path": child, "is_dir": True})
        elif store.isfile(full):
            out.append({"path": child, "is_dir": False, "file_size": store.list_files(full)[0].size})
    return {"files": out} if out else {}


def version_file(ctx: ServiceContext, workspace: str, name: str, version: str, path: str) -> tuple[Any, str]:
    store, root = _version_root(ctx, workspace, name, version)
    rel = _inside(root, path)
    if not store.isfile(rel):
        raise NotFoundError(f"Artifact '{path}' of model version {name}/{version} not found")
    return store, rel


def _version_fields(container: AssetContainerRow, row: AssetVersionRow) -> dict[str, Any]:
    props = row.spec.get("properties") or {}
    return {
        "name": container.name,
        "version_number": row.version,
        "run_id": props.get(PROP_RUN) or row.spec.get("job_name"),
        "source_path": props.get(PROP_SOURCE) or row.spec.get("path"),
        "model_id": props.get(PROP_MODEL),
        "current_stage": canonical_stage(row.stage),
        "creation_timestamp": _ms(row.created_at),
        "last_updated_timestamp": _ms(row.updated_at),
    }


def search_model_versions(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = _limit(data, DEFAULT_VERSIONS, MAX_VERSIONS)
    clauses = parse_filter(data.get("filter"))
    attributes = ("name", "version_number", "run_id", "source_path", "model_id", "current_stage")
    for c in clauses:
        if not (c.kind == "tag" or (c.kind == "attribute" and c.key in attributes)):
            raise UserError(f"Invalid attribute key '{c.key}' specified. Valid keys are {list(attributes)}")
    orders = parse_order_by(tr._list(data.get("order_by")))
    sortable = ("name", "version_number", "creation_timestamp", "last_updated_timestamp", "run_id", "source_path")
    for o in orders:
        if o.kind != "attribute" or o.key not in sortable:
            raise UserError(f"Invalid order by key '{o.key}' specified. Valid keys are {list(sortable)}")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        query = (
            select(AssetContainerRow, AssetVersionRow)
            .join(AssetVersionRow, AssetVersionRow.container_id == AssetContainerRow.id)
            .where(
                AssetContainerRow.workspace_id == ws_id,
                AssetContainerRow.kind == KIND,
                AssetContainerRow.archived.is_(False),
                AssetVersionRow.archived.is_(False),
            )
        )
        for c in clauses:
            if c.kind == "attribute" and c.key == "name" and c.op == "=":
                query = query.where(AssetContainerRow.name == str(c.value))
        found = []
        for container, row in session.execute(query):
            fields = _version_fields(container, row)
            tags = row.spec.get("tags") or {}
            if all(_match(fields.get(c.key) if c.kind == "attribute" else tags.get(c.key), c) for c in clauses):
                found.append((container, row, fields))
        found.sort(key=lambda t: (t[0].name, _neg(_version_key(t[1]))))
        for o in reversed(orders):
            if o.key == "version_number":
                found.sort(key=lambda t: _version_key(t[1]), reverse=not o.ascending)
            else:
                found.sort(key=lambda t, k=o.key: t[2].get(k) or "", reverse=not o.ascending)
        page, token = _offset_page(found, data, limit)
        aliases = alias_rows.aliases_of(session, list({c.id for c, _, _ in page}))
        versions = [_mv_body(c, r, [a for a, v in aliases.get(c.id, []) if v.id == r.id]) for c, r, _ in page]
    body: dict[str, Any] = {"model_versions": versions}
    if token:
        body["next_page_token"] = token
    return body


def _neg(key: tuple[int, int, str]) -> tuple[int, int, str]:
    # Versions newest first within a name: numbers descending, then other versions.
    return (key[0], -key[1], key[2])


def _set_version_tags(ctx: ServiceContext, workspace: str, data: dict[str, Any], change: Any) -> dict[str, Any]:
    name, version = tr._str(data, "name"), _version_arg(data)
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        row = _version(session, container, version)
        tags = dict(row.spec.get("tags") or {})
    assets.update(ctx, workspace, KIND, name, version, {"tags": change(tags)})
    return {}


def set_model_version_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    new = _tags([{"key": data.get("key"), "value": data.get("value")}])
    return _set_version_tags(ctx, workspace, data, lambda tags: {**tags, **new})


def delete_model_version_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = tr._str(data, "key")

    def drop(tags: dict[str, str]) -> dict[str, str]:
        if key not in tags:
            raise NotFoundError(f"No tag with name: {key} for model version {data.get('name')}/{data.get('version')}")
        return {k: v for k, v in tags.items() if k != key}

    return _set_version_tags(ctx, workspace, data, drop)


# -- aliases --------------------------------------------------------------------------------


def _alias_arg(data: dict[str, Any], *, new: bool = False) -> str:
    alias = tr._str(data, "alias")
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
    name, version = tr._str(data, "name"), _version_arg(data)
    alias = _alias_arg(data, new=True)
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        row = _version(session, container, version)
        alias_rows.set_alias(session, container.id, alias, row.id)
        container.updated_at = utcnow()
    return {}


def delete_registered_model_alias(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, alias = tr._str(data, "name"), _alias_arg(data)
    with ctx.db.write() as session:
        container = _container(session, workspace_id(session, workspace), name)
        alias_rows.delete_alias(session, container.id, alias)
        container.updated_at = utcnow()
    return {}


def get_model_version_by_alias(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name, alias = tr._str(data, "name"), _alias_arg(data)
    with ctx.db.read() as session:
        container = _container(session, workspace_id(session, workspace), name)
        row = alias_rows.find_alias(session, container.id, alias)
        if row is None:
            raise NotFoundError(f"Registered model alias {alias} not found.", details={"name": name, "alias": alias})
        return {"model_version": _model_version(session, container, row)}
