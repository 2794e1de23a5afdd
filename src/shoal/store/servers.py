"""Servers sharing one database: each renews a lease row while it runs; a duty that only one may
do at a time (the controllers) is a ``cluster_lease`` row taken by a conditional update.

Times are the servers' clocks (UTC): servers sharing a database keep their clocks in step (NTP),
as every lease scheme does; the lease length leaves seconds of slack for that."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shoal.store import dialect
from shoal.store.tables import ClusterLeaseRow, ServerLeaseRow


def renew(session: Session, server_id: str, *, url: str, host: str, pid: int, now: datetime, ttl: float) -> None:
    """Create or extend this server's lease until ``now + ttl``."""
    expires = now + timedelta(seconds=ttl)
    values = {"server_id": server_id, "url": url, "host": host, "pid": pid, "started_at": now, "expires_at": expires}
    stmt = dialect.insert(session, ServerLeaseRow).values(**values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["server_id"], set_={"expires_at": expires, "url": url, "host": host, "pid": pid}
        )
    )


def release(session: Session, server_id: str) -> None:
    """A server stopping cleanly gives up its lease and its duties: the others need not wait."""
    session.execute(delete(ServerLeaseRow).where(ServerLeaseRow.server_id == server_id))
    session.execute(delete(ClusterLeaseRow).where(ClusterLeaseRow.holder == server_id))


def live(session: Session, now: datetime) -> set[str]:
    """The ids of servers whose lease has not expired."""
    return set(session.scalars(select(ServerLeaseRow.server_id).where(ServerLeaseRow.expires_at > now)))


def hold_duty(session: Session, name: str, server_id: str, *, now: datetime, ttl: float) -> bool:
    """Take or keep the duty ``name``: true when this server holds it until ``now + ttl``.

    One conditional ``UPDATE`` decides between servers (its row lock serialises them on
    PostgreSQL; SQLite's write lock does the same), so two servers never both hold it."""
    expires = now + timedelta(seconds=ttl)
    session.execute(
        dialect.insert(session, ClusterLeaseRow)
        .values(name=name, holder=server_id, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    result = session.execute(
        update(ClusterLeaseRow)
        .where(ClusterLeaseRow.name == name)
        .where((ClusterLeaseRow.holder == server_id) | (ClusterLeaseRow.expires_at <= now))
        .values(holder=server_id, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]
