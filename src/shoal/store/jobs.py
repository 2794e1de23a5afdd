"""Job rows. With ``store/runs.py`` (MLflow runs are jobs), the only place that queries ``JobRow``:
services ask here by name, by status or by parent; what a job *means* (its states, its body)
stays in ``services/jobs``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, defer

from shoal.errors import NotFoundError, not_found
from shoal.store import workspaces
from shoal.store.tables import JobRow, ResourceRow, WorkspaceRow


def find(session: Session, ws_id: int, name: str, *, for_update: bool = False) -> JobRow | None:
    """A job by name; ``for_update`` (in a write transaction) locks its row on PostgreSQL until the
    transaction ends, so a read-change-write cannot lose another server's change."""
    query = select(JobRow).where(JobRow.workspace_id == ws_id, JobRow.name == name)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def missing(session: Session, ws_id: int, name: str) -> NotFoundError:
    """NOT_FOUND for a job: the workspace, names close to ``name`` among the 1,000 newest jobs
    (jobs are many: no close match means only the hint to list them)."""
    recent = list(
        session.scalars(select(JobRow.name).where(JobRow.workspace_id == ws_id).order_by(JobRow.id.desc()).limit(1000))
    )
    close = difflib.get_close_matches(name, recent, n=5, cutoff=0.6)
    return not_found("job", name, known=close or None, workspace=workspaces.name_of(session, ws_id))


def exists(session: Session, ws_id: int, name: str) -> bool:
    return session.scalar(select(JobRow.id).where(JobRow.workspace_id == ws_id, JobRow.name == name)) is not None


def by_id(session: Session, job_id: int) -> JobRow | None:
    return session.get(JobRow, job_id)


def locked(session: Session, job_id: int) -> JobRow | None:
    """A job by id, its row locked until the write transaction ends (``SELECT … FOR UPDATE`` on
    PostgreSQL; SQLite's write transactions are serialised already). Every controller changes a
    job through this, so what it read is still true when it writes, whichever server it runs on."""
    return session.get(JobRow, job_id, with_for_update=True, populate_existing=True)


def claim_queued(session: Session, job_id: int) -> JobRow | None:
    """The job, locked, if it is still ``Queued``; None when another server has it (its row is
    locked by that server's claim: skipped, not waited for) or has already started it."""
    query = (
        select(JobRow)
        .where(JobRow.id == job_id, JobRow.status == "Queued")
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalar(query)


def lock_compute(session: Session, ws_id: int, compute: str) -> None:
    """Serialise the starts on one capped compute across servers: its resource row stays locked
    until the claiming transaction ends, so the busy count read after this is the true one."""
    session.execute(
        select(ResourceRow.id)
        .where(ResourceRow.workspace_id == ws_id, ResourceRow.kind == "compute", ResourceRow.name == compute)
        .with_for_update()
    )


def owned_elsewhere(session: Session, statuses: Iterable[str], server_ids: Iterable[str]) -> list[JobRow]:
    """Jobs in these states claimed by a server not in ``server_ids`` (the live ones)."""
    return list(
        session.scalars(
            select(JobRow)
            .where(JobRow.status.in_(sorted(str(s) for s in statuses)))
            .where(JobRow.claimed_by.is_not(None), JobRow.claimed_by.not_in(sorted(server_ids)))
            .order_by(JobRow.id)
        )
    )


def workspace_name(session: Session, row: JobRow) -> str:
    return workspaces.name_of(session, row.workspace_id) or ""


def token_facts(session: Session, workspace: str, name: str) -> tuple[str, int, int, str | None, str | None] | None:
    """``(status, attempt, workspace_id, user_id, parent_job_name)`` of a job, by workspace and job
    name, in one read: what checking a job token needs on every runner call."""
    found = session.execute(
        select(JobRow.status, JobRow.attempt, JobRow.workspace_id, JobRow.user_id, JobRow.parent_job_name)
        .join(WorkspaceRow, WorkspaceRow.id == JobRow.workspace_id)
        .where(WorkspaceRow.name == workspace, JobRow.name == name)
    ).first()
    return (found[0], found[1], found[2], found[3], found[4]) if found is not None else None


def list_page_rows(
    session: Session,
    ws_id: int,
    *,
    parent_job_name: str | None,
    archived: bool | None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[JobRow]:
    """Newest first (keyset on the row id). Without a parent: the workspace's top-level jobs."""
    query = select(JobRow).where(JobRow.workspace_id == ws_id)
    if parent_job_name:
        query = query.where(JobRow.parent_job_name == parent_job_name)
    else:
        query = query.where(JobRow.parent_job_name.is_(None))
    if archived is not None:
        query = query.where(JobRow.archived.is_(archived))
    if status:
        query = query.where(JobRow.status == status)
    if before_id is not None:
        query = query.where(JobRow.id < before_id)
    return list(session.scalars(query.order_by(JobRow.id.desc()).limit(limit)))


def with_status(
    session: Session,
    statuses: Iterable[str],
    *,
    types: Iterable[str] | None = None,
    exclude_types: Iterable[str] | None = None,
    newest_first: bool = False,
    light: bool = False,
) -> list[JobRow]:
    """Jobs in any of these states, in submission order (or newest first). ``status IN (…)``
    leads with the indexed column, so a controller's tick never scans the whole job table."""
    query: Select[Any] = select(JobRow).where(JobRow.status.in_(sorted(str(s) for s in statuses)))
    if types is not None:
        query = query.where(JobRow.type.in_(list(types)))
    if exclude_types is not None:
        query = query.where(JobRow.type.not_in(list(exclude_types)))
    if light:  # a pass over pipelines: their step specs load only when read
        query = query.options(*(defer(c) for c in _NOT_FOR_A_PASS))
    return list(session.scalars(query.order_by(JobRow.id.desc() if newest_first else JobRow.id)))


# What a controller's pass over many jobs reads of each: ids, names, states and ``resolved``. The
# other JSON columns are loaded (and decoded) only for a row that reads them: a 100-step pipeline's
# pass would otherwise decode every step's spec and status times on every dispatcher tick.
_NOT_FOR_A_PASS = (JobRow.spec, JobRow.status_times, JobRow.error)


def waiting_dependencies(session: Session, status: str) -> list[tuple[int, str, int, list[str] | None]]:
    """``(id, name, workspace_id, depends_on)`` of the child jobs (pipeline steps, trials) in
    ``status``. The database reads the step list out of ``resolved``: a controller's pass over a
    100-step pipeline decodes 100 short lists, not 100 whole documents, on every tick."""
    depends_on = JobRow.resolved["depends_on"]
    query = select(JobRow.id, JobRow.name, JobRow.workspace_id, depends_on).where(
        JobRow.status == status, JobRow.parent_job_name.is_not(None)
    )
    return [(i, n, w, list(d) if isinstance(d, list) else None) for i, n, w, d in session.execute(query)]


def states_by_name(session: Session, names: Iterable[str]) -> dict[tuple[int, str], str]:
    """``{(workspace_id, name): status}`` of the jobs with these names, in every workspace."""
    query = select(JobRow.workspace_id, JobRow.name, JobRow.status).where(JobRow.name.in_(sorted(names)))
    return {(w, n): st for w, n, st in session.execute(query)}


def for_a_pass(session: Session, ids: Iterable[int] = (), names: Iterable[str] = ()) -> list[JobRow]:
    """Jobs by id or by name (any workspace: the caller keys them), as a controller's pass reads
    them: ``spec``, ``status_times`` and ``error`` load only when read."""
    wanted = [JobRow.id.in_(sorted(set(ids))), JobRow.name.in_(sorted(set(names)))]
    query = select(JobRow).where(or_(*wanted)).options(*(defer(c) for c in _NOT_FOR_A_PASS))
    return list(session.scalars(query))


def child_state_counts(session: Session, parents: Iterable[tuple[int, str]]) -> dict[tuple[int, str], dict[str, int]]:
    """``{(workspace_id, parent): {status: how many children}}``: what a roll-up looks at first,
    counted by the database instead of read row by row."""
    parents = set(parents)
    if not parents:
        return {}
    query = (
        select(JobRow.workspace_id, JobRow.parent_job_name, JobRow.status, func.count())
        .where(
            JobRow.workspace_id.in_(sorted({w for w, _ in parents})),
            JobRow.parent_job_name.in_(sorted({p for _, p in parents})),
        )
        .group_by(JobRow.workspace_id, JobRow.parent_job_name, JobRow.status)
    )
    counts: dict[tuple[int, str], dict[str, int]] = {}
    for ws, parent, status, n in session.execute(query):
        if (ws, parent) in parents:
            counts.setdefault((ws, parent), {})[status] = n
    return counts


def completed_with_reuse_key(session: Session, ws_id: int, key: str, status: str, *, not_id: int) -> list[JobRow]:
    """The newest few jobs with this reuse key in ``status`` (a reuse source is among them)."""
    return list(
        session.scalars(
            select(JobRow)
            .where(JobRow.workspace_id == ws_id, JobRow.reuse_key == key, JobRow.status == status, JobRow.id != not_id)
            .order_by(JobRow.id.desc())
            .limit(5)
        )
    )


def on_compute(session: Session, ws_id: int, compute: str, statuses: Iterable[str]) -> list[JobRow]:
    """Jobs on a compute in these states, in the order they started."""
    return list(
        session.scalars(
            select(JobRow)
            .where(JobRow.workspace_id == ws_id, JobRow.compute == compute)
            .where(JobRow.status.in_([str(s) for s in statuses]))
            .order_by(JobRow.start_time, JobRow.id)
        )
    )


def workspace_names(session: Session) -> dict[int, str]:
    return {w.id: w.name for w in session.scalars(select(WorkspaceRow))}


def children(session: Session, ws_id: int, parent: str, *, states_only: bool = False) -> list[JobRow]:
    """A pipeline's or sweep's jobs; ``states_only``: their JSON columns load when read."""
    query = select(JobRow).where(JobRow.workspace_id == ws_id, JobRow.parent_job_name == parent).order_by(JobRow.id)
    if states_only:
        query = query.options(*(defer(c) for c in (*_NOT_FOR_A_PASS, JobRow.resolved)))
    return list(session.scalars(query))
