"""Online endpoint and deployment rows: the only queries on them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shoal.errors import NotFoundError, not_found
from shoal.store import workspaces
from shoal.store.tables import OnlineDeploymentRow, OnlineEndpointRow, WorkspaceRow, utcnow


def find_endpoint(session: Session, workspace_id: int, name: str) -> OnlineEndpointRow | None:
    return session.scalar(
        select(OnlineEndpointRow).where(OnlineEndpointRow.workspace_id == workspace_id, OnlineEndpointRow.name == name)
    )


def endpoint_names(session: Session, workspace_id: int) -> list[str]:
    query = select(OnlineEndpointRow.name).where(OnlineEndpointRow.workspace_id == workspace_id)
    return list(session.scalars(query.order_by(OnlineEndpointRow.name)))


def get_endpoint(session: Session, workspace_id: int, name: str) -> OnlineEndpointRow:
    row = find_endpoint(session, workspace_id, name)
    if row is None:
        known = endpoint_names(session, workspace_id)
        raise not_found(
            "online endpoint",
            name,
            known=known,
            list_hint="shoal online-endpoint list",
            workspace=workspaces.name_of(session, workspace_id),
        )
    return row


def list_endpoints(session: Session, workspace_id: int) -> list[OnlineEndpointRow]:
    query = select(OnlineEndpointRow).where(OnlineEndpointRow.workspace_id == workspace_id)
    return list(session.scalars(query.order_by(OnlineEndpointRow.name)))


def add_endpoint(session: Session, workspace_id: int, name: str, spec: dict[str, Any], keys: str) -> OnlineEndpointRow:
    row = OnlineEndpointRow(workspace_id=workspace_id, name=name, spec=spec, keys=keys, state="Succeeded")
    session.add(row)
    session.flush()
    return row


def touch(row: OnlineEndpointRow | OnlineDeploymentRow) -> None:
    row.updated_at = utcnow()


def find_deployment(session: Session, endpoint: OnlineEndpointRow, name: str) -> OnlineDeploymentRow | None:
    return session.scalar(
        select(OnlineDeploymentRow).where(
            OnlineDeploymentRow.endpoint_id == endpoint.id, OnlineDeploymentRow.name == name
        )
    )


def list_deployments(session: Session, endpoint: OnlineEndpointRow) -> list[OnlineDeploymentRow]:
    query = select(OnlineDeploymentRow).where(OnlineDeploymentRow.endpoint_id == endpoint.id)
    return list(session.scalars(query.order_by(OnlineDeploymentRow.name)))


def get_deployment(session: Session, endpoint: OnlineEndpointRow, name: str) -> OnlineDeploymentRow:
    row = find_deployment(session, endpoint, name)
    if row is None:
        raise deployment_not_found("online", endpoint.name, name, [d.name for d in list_deployments(session, endpoint)])
    return row


def deployment_not_found(kind: str, endpoint: str, name: str, known: list[str]) -> NotFoundError:
    """The error for a missing ``kind`` ("online" or "batch") deployment, naming those the endpoint has."""
    return NotFoundError(
        f"{kind} deployment '{name}' not found in endpoint '{endpoint}'"
        + (f"; it has {', '.join(known)}" if known else "; it has no deployments"),
        details={"endpoint": endpoint, "deployment": name, "known": known},
    )


def add_deployment(
    session: Session, endpoint: OnlineEndpointRow, name: str, spec: dict[str, Any], resolved: dict[str, Any]
) -> OnlineDeploymentRow:
    row = OnlineDeploymentRow(
        endpoint_id=endpoint.id, name=name, spec=spec, resolved=resolved, state="Creating", generation=1
    )
    session.add(row)
    session.flush()
    return row


def deployment_by_id(session: Session, row_id: int) -> OnlineDeploymentRow | None:
    return session.get(OnlineDeploymentRow, row_id)


def all_live_deployments(session: Session) -> list[tuple[str, OnlineEndpointRow, OnlineDeploymentRow]]:
    """Every deployment of every workspace with its endpoint and workspace name (server start)."""
    query = (
        select(WorkspaceRow.name, OnlineEndpointRow, OnlineDeploymentRow)
        .join(OnlineEndpointRow, OnlineEndpointRow.workspace_id == WorkspaceRow.id)
        .join(OnlineDeploymentRow, OnlineDeploymentRow.endpoint_id == OnlineEndpointRow.id)
        .order_by(OnlineDeploymentRow.id)
    )
    return [(ws, ep, dep) for ws, ep, dep in session.execute(query)]


def all_endpoints(session: Session) -> list[tuple[str, OnlineEndpointRow]]:
    query = select(WorkspaceRow.name, OnlineEndpointRow).join(
        OnlineEndpointRow, OnlineEndpointRow.workspace_id == WorkspaceRow.id
    )
    return [(ws, ep) for ws, ep in session.execute(query)]


def publish_instances(session: Session, deployment_id: int, served_by: str, instances: list[dict[str, Any]]) -> None:
    """Record where a deployment's instances listen (the endpoints duty's holder writes this)."""
    session.execute(
        update(OnlineDeploymentRow)
        .where(OnlineDeploymentRow.id == deployment_id)
        .values(served_by=served_by, instances=instances)
        .execution_options(synchronize_session=False)
    )


def delete(session: Session, row: OnlineEndpointRow | OnlineDeploymentRow) -> None:
    session.delete(row)
