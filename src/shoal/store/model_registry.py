"""Rows of the MLflow model registry that model assets do not already hold: aliases.

A registered model is a model asset container and a model version an asset version (see
``store/assets.py``); an alias names one version of one container.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shoal.store.tables import AssetContainerRow, AssetVersionRow, ModelAliasRow

MODEL = "model"


def aliases_of(session: Session, container_ids: list[int]) -> dict[int, list[tuple[str, AssetVersionRow]]]:
    """Each container's aliases with the version each names, by alias name."""
    out: dict[int, list[tuple[str, AssetVersionRow]]] = {i: [] for i in container_ids}
    if not container_ids:
        return out
    query = (
        select(ModelAliasRow.container_id, ModelAliasRow.alias, AssetVersionRow)
        .join(AssetVersionRow, AssetVersionRow.id == ModelAliasRow.version_id)
        .where(ModelAliasRow.container_id.in_(container_ids))
        .order_by(ModelAliasRow.alias)
    )
    for container_id, alias, version in session.execute(query):
        out[container_id].append((alias, version))
    return out


def find_alias(session: Session, container_id: int, alias: str) -> AssetVersionRow | None:
    return session.scalar(
        select(AssetVersionRow)
        .join(ModelAliasRow, ModelAliasRow.version_id == AssetVersionRow.id)
        .where(ModelAliasRow.container_id == container_id, ModelAliasRow.alias == alias)
    )


def set_alias(session: Session, container_id: int, alias: str, version_id: int) -> None:
    row = session.get(ModelAliasRow, (container_id, alias))
    if row is None:
        session.add(ModelAliasRow(container_id=container_id, alias=alias, version_id=version_id))
    else:
        row.version_id = version_id
    session.flush()


def delete_alias(session: Session, container_id: int, alias: str) -> None:
    where = (ModelAliasRow.container_id == container_id, ModelAliasRow.alias == alias)
    session.execute(delete(ModelAliasRow).where(*where))


def delete_version(session: Session, version: AssetVersionRow) -> None:
    """Remove a version and the aliases naming it (explicitly: SQLite enforces cascades only
    when foreign keys are on, and a missed alias would point at nothing)."""
    session.execute(delete(ModelAliasRow).where(ModelAliasRow.version_id == version.id))
    session.delete(version)
    session.flush()


def versions_of(session: Session, container_ids: list[int], *, archived: bool = False) -> list[AssetVersionRow]:
    """The versions of these models, oldest first (archived ones only when asked)."""
    if not container_ids:
        return []
    query = select(AssetVersionRow).where(AssetVersionRow.container_id.in_(container_ids))
    if not archived:
        query = query.where(AssetVersionRow.archived.is_(False))
    return list(session.scalars(query.order_by(AssetVersionRow.id)))


def models(session: Session, ws_id: int, *, name: str | None = None) -> list[AssetContainerRow]:
    """A workspace's registered models (model asset names not archived), or the one named."""
    query = select(AssetContainerRow).where(
        AssetContainerRow.workspace_id == ws_id,
        AssetContainerRow.kind == MODEL,
        AssetContainerRow.archived.is_(False),
    )
    if name is not None:
        query = query.where(AssetContainerRow.name == name)
    return list(session.scalars(query))


def model_versions(
    session: Session, ws_id: int, *, name: str | None = None
) -> list[tuple[AssetContainerRow, AssetVersionRow]]:
    """Every live version of the workspace's live models (of the one named), with its model."""
    query = (
        select(AssetContainerRow, AssetVersionRow)
        .join(AssetVersionRow, AssetVersionRow.container_id == AssetContainerRow.id)
        .where(
            AssetContainerRow.workspace_id == ws_id,
            AssetContainerRow.kind == MODEL,
            AssetContainerRow.archived.is_(False),
            AssetVersionRow.archived.is_(False),
        )
    )
    if name is not None:
        query = query.where(AssetContainerRow.name == name)
    return [(container, row) for container, row in session.execute(query)]
