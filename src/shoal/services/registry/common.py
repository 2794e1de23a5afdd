"""What the MLflow model registry's modules share: a registered model is a model asset name (its
container holds the description, the tags and the aliases); a model version is a model asset
version. Here: finding them with MLflow's errors, checking arguments, and their MLflow bodies.

MLflow stages map onto the asset's ``stage``; tags of a version are the asset's tags; what MLflow
knows of a version's origin (source URI, run, logged model, run link) is kept in its properties
(``mlflow.source``, ``mlflow.run_id``, ``mlflow.model_id``, ``mlflow.run_link``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from shoal.entities.validation import ASSET_NAME
from shoal.errors import NotFoundError, UserError, not_found_hint
from shoal.services.tracking.search_grammar import Clause
from shoal.services.tracking.values import (
    MAX_TAG_VALUE,
    check_key,
    check_value,
    int_arg,
    kv_list,
    match_number,
    match_text,
    page_offset,
    str_arg,
)
from shoal.store import assets as asset_rows
from shoal.store import model_registry as model_rows
from shoal.store.model_registry import versions_of
from shoal.store.paging import encode_token
from shoal.store.tables import AssetContainerRow, AssetVersionRow

KIND = "model"


STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}


MAX_DESCRIPTION = 5000


PROP_SOURCE, PROP_RUN, PROP_MODEL, PROP_LINK = "mlflow.source", "mlflow.run_id", "mlflow.model_id", "mlflow.run_link"


def ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def name_arg(data: dict[str, Any], key: str = "name") -> str:
    name = str_arg(data, key)
    try:
        return ASSET_NAME.check(name)
    except ValueError as exc:
        raise UserError(f"Invalid registered model name {name!r}: {exc}") from exc


def version_arg(data: dict[str, Any]) -> str:
    value = data.get("version")
    if value is None or value == "":
        raise UserError("Missing value for required parameter 'version'.")
    return str(value)


def container_row(session: Session, ws_id: int, name: str) -> AssetContainerRow:
    row = asset_rows.find_container(session, ws_id, KIND, name)
    if row is None:
        # MLflow's message, then close names (a typo is the usual cause).
        hint = not_found_hint(
            KIND, name, known=asset_rows.container_names(session, ws_id, KIND), list_hint="shoal model list"
        )
        raise NotFoundError(f"Registered Model with name={name} not found{hint}", details={"name": name})
    return row


def version_row(session: Session, container: AssetContainerRow, version: str) -> AssetVersionRow:
    row = asset_rows.find_version(session, container.id, version)
    if row is None:
        raise NotFoundError(
            f"Model Version (name={container.name}, version={version}) not found",
            details={"name": container.name, "version": version},
        )
    return row


def canonical_stage(stage: str | None) -> str:
    if not stage:
        return "None"
    return STAGES.get(stage.lower(), stage)


def stage_arg(value: Any) -> str:
    stage = STAGES.get(str(value or "").strip().lower())
    if stage is None:
        raise UserError(f"Invalid Model Version stage: {value}. Value must be one of {', '.join(STAGES.values())}.")
    return stage


def tags_arg(items: Any, limit: int = MAX_TAG_VALUE) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in kv_list(items):
        key = check_key(item.get("key"), "tag")
        out[key] = check_value(item.get("value", ""), limit, "tag", key)
    return out


def description_arg(data: dict[str, Any]) -> str | None:
    value = data.get("description")
    if value is None:
        return None
    value = str(value)
    if len(value) > MAX_DESCRIPTION:
        raise UserError(f"description had length {len(value)}, which exceeded length limit of {MAX_DESCRIPTION}")
    return value


def version_key(row: AssetVersionRow) -> tuple[int, int, str]:
    return (0, int(row.version), "") if row.version.isdigit() else (1, 0, row.version)


def match_clause(value: Any, c: Clause) -> bool:
    """MLflow's registry filters: a missing tag or field matches ``!=`` and ``NOT IN`` (so the
    client's ``tags.`mlflow.prompt.is_prompt` != 'true'`` keeps every model)."""
    if value is None:
        return c.op in ("!=", "NOT IN")
    if isinstance(c.value, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return match_number(number, c)  # type: ignore[arg-type]
    return match_text(str(value), c)


def offset_page(items: list[Any], data: dict[str, Any], limit: int) -> tuple[list[Any], str | None]:
    offset = page_offset(data.get("page_token"))
    page = items[offset : offset + limit]
    token = encode_token([offset + limit]) if offset + limit < len(items) else None
    return page, token


def limit_arg(data: dict[str, Any], default: int, maximum: int) -> int:
    limit = int_arg(data, "max_results", default) or default
    if not 1 <= limit <= maximum:
        raise UserError(f"Invalid value for max_results. It must be at most {maximum}, but got value {limit}")
    return limit


# -- bodies ---------------------------------------------------------------------------------


def version_body(container: AssetContainerRow, row: AssetVersionRow, aliases: list[str]) -> dict[str, Any]:
    spec = row.spec
    props = spec.get("properties") or {}
    body: dict[str, Any] = {
        "name": container.name,
        "version": row.version,
        "creation_timestamp": ms(row.created_at),
        "last_updated_timestamp": ms(row.updated_at),
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


def model_body(
    container: AssetContainerRow, versions: list[AssetVersionRow], aliases: list[tuple[str, AssetVersionRow]]
) -> dict[str, Any]:
    latest: dict[str, AssetVersionRow] = {}
    for row in versions:  # in creation order: the last of each stage wins
        if not row.archived:
            latest[canonical_stage(row.stage)] = row
    updated = max([container.updated_at, *(v.updated_at for v in versions)], key=ms)
    body: dict[str, Any] = {
        "name": container.name,
        "creation_timestamp": ms(container.created_at),
        "last_updated_timestamp": ms(updated),
        "user_id": "",
        "latest_versions": [version_body(container, v, []) for v in latest.values()],
        "tags": [{"key": k, "value": v} for k, v in (container.tags or {}).items()],
        "aliases": [{"alias": a, "version": v.version} for a, v in aliases],
    }
    if container.description:
        body["description"] = container.description
    return body


def registered_model_body(session: Session, container: AssetContainerRow) -> dict[str, Any]:
    versions = versions_of(session, [container.id])
    return model_body(container, versions, model_rows.aliases_of(session, [container.id])[container.id])


def model_version_body(session: Session, container: AssetContainerRow, row: AssetVersionRow) -> dict[str, Any]:
    aliases = [a for a, v in model_rows.aliases_of(session, [container.id])[container.id] if v.id == row.id]
    return version_body(container, row, aliases)
