"""Batch endpoint and deployment rows: the only queries on them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.errors import not_found
from shoal.store import workspaces
from shoal.store.endpoints import deployment_not_found
from shoal.store.tables import BatchDeploymentRow, BatchEndpointRow, utcnow


def find_endpoint(session: Session, workspace_id: int, name: str) -> BatchEndpointRow | None:
    return session.scalar(
        select(BatchEndpointRow).where(BatchEndpointRow.workspace_id == workspace_id, BatchEndpointRow.name == name)
    )


def list_endpoints(session: Session, workspace_id: int) -> list[BatchEndpointRow]:
    query = select(BatchEndpointRow).where(BatchEndpointRow.workspace_id == workspace_id)
    return list(session.scalars(query.order_by(BatchEndpointRow.name)))


def get_endpoint(session: Session, workspace_id: int, name: str) -> BatchEndpointRow:
    row = find_endpoint(session, workspace_id, name)
    if row is None:
        raise not_found(
            "batch endpoint",
            name,
            known=[r.name for r in list_endpoints(session, workspace_id)],
            list_hint="shoal batch-endpoint list",
            workspace=workspaces.name_of(session, workspace_id),
        )
    return row


def add_endpoint(session: Session, workspace_id: int, name: str, spec: dict[str, Any]) -> BatchEndpointRow:
    row = BatchEndpointRow(workspace_id=workspace_id, name=name, spec=spec, jobs=[])
    session.add(row)
    session.flush()
    return row


def touch(row: BatchEndpointRow | BatchDeploymentRow) -> None:
    row.updated_at = utcnow()


def list_deployments(session: Session, endpoint: BatchEndpointRow) -> list[BatchDeploymentRow]:
    query = select(BatchDeploymentRow).where(BatchDeploymentRow.endpoint_id == endpoint.id)
    return list(session.scalars(query.order_by(BatchDeploymentRow.name)))


def find_deployment(session: Session, endpoint: BatchEndpointRow, name: str) -> BatchDeploymentRow | None:
    return session.scalar(
        select(BatchDeploymentRow).where(BatchDeploymentRow.endpoint_id == endpoint.id, BatchDeploymentRow.name == name)
    )


def get_deployment(session: Session, endpoint: BatchEndpointRow, name: str) -> BatchDeploymentRow:
    row = find_deployment(session, endpoint, name)
    if row is None:
        raise deployment_not_found("batch", endpoint.name, name, [d.name for d in list_deployments(session, endpoint)])
    return row


def put_deployment(
    session: Session, endpoint: BatchEndpointRow, name: str, spec: dict[str, Any]
) -> tuple[BatchDeploymentRow, bool]:
    row = find_deployment(session, endpoint, name)
    if row is None:
        row = BatchDeploymentRow(endpoint_id=endpoint.id, name=name, spec=spec)
        session.add(row)
        session.flush()
        return row, True
    row.spec = spec
    touch(row)
    return row, False


def delete(session: Session, row: BatchEndpointRow | BatchDeploymentRow) -> None:
    session.delete(row)
