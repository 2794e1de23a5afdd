"""Rows of ``studio_login``: one-time login codes and the browser sessions they became."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shoal.store.tables import StudioLoginRow


def add(session: Session, row: StudioLoginRow) -> None:
    session.add(row)
    session.flush()


def find(session: Session, kind: str, secret_digest: str) -> StudioLoginRow | None:
    return session.scalar(
        select(StudioLoginRow).where(StudioLoginRow.kind == kind, StudioLoginRow.secret_digest == secret_digest)
    )


def use_code(session: Session, row_id: int, now: datetime) -> bool:
    """Mark a code used; False when another request used it first (a code signs in once)."""
    done = session.execute(
        update(StudioLoginRow)
        .where(StudioLoginRow.id == row_id, StudioLoginRow.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)


def remove(session: Session, kind: str, secret_digest: str) -> None:
    session.execute(
        delete(StudioLoginRow).where(StudioLoginRow.kind == kind, StudioLoginRow.secret_digest == secret_digest)
    )


def purge_expired(session: Session, now: datetime) -> None:
    session.execute(delete(StudioLoginRow).where(StudioLoginRow.expires_at < now))
