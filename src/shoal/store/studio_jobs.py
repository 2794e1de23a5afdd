"""The studio's job list: a workspace's jobs filtered (experiment, status, tags, MLflow's filter
expression), ordered by a column, a metric, a param or a tag, and keyset-paged on (that value, id).

The default order, newest first, walks ``ix_job_parent`` (or ``ix_job_experiment_list`` within an
experiment) in index order and stops at the page's end, so a page costs the same at 100,000 jobs
as at 100. The other orders sort the matching ids (not whole rows) once per page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, cast, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from shoal.store.runs import condition
from shoal.store.tables import ExperimentRow, JobRow, LatestMetricRow, ParamRow, RunTagRow
from shoal.store.tracking import compare

ATTRIBUTE_ORDERS = ("created_at", "name", "status", "start_time", "end_time", "duration", "display_name")


@dataclass
class JobFilter:
    """What the list shows; ``clauses`` are parsed MLflow filter clauses (``search_grammar``)."""

    ws_id: int
    experiment_id: int | None = None
    no_experiment: bool = False  # an experiment was named and does not exist: nothing matches
    statuses: list[str] = field(default_factory=list)
    tags: list[tuple[str, str | None]] = field(default_factory=list)
    clauses: list[Any] = field(default_factory=list)
    parent: str | None = None
    archived: bool | None = False
    job_states: dict[str, list[str]] = field(default_factory=dict)


def _spec_tag(key: str) -> Any:
    return JobRow.spec["tags"][key].as_string()


def _tag_condition(key: str, value: str | None) -> Any:
    """A job tag (the job's ``tags``) or an MLflow run tag of that key (and value)."""
    run_tag = exists().where(RunTagRow.job_id == JobRow.id, RunTagRow.key == key)
    if value is None:
        return or_(_spec_tag(key).is_not(None), run_tag)
    return or_(_spec_tag(key) == value, run_tag.where(RunTagRow.value == value))


def _filtered(f: JobFilter, columns: list[Any], *, walk_other_index: bool = False) -> Any:
    """The jobs ``f`` selects. ``walk_other_index``: the workspace's job indexes are not to drive the
    query (``workspace_id + 0`` keeps SQLite from them), so another table's index order can."""
    ws = (JobRow.workspace_id + 0) if walk_other_index else JobRow.workspace_id
    query = select(*columns).where(ws == f.ws_id, JobRow.lifecycle_stage != "deleted")
    if f.no_experiment:
        query = query.where(JobRow.id < 0)
    if f.experiment_id is not None:
        query = query.where(JobRow.experiment_id == f.experiment_id)
    if f.parent:
        query = query.where(JobRow.parent_job_name == f.parent)
    else:
        query = query.where(JobRow.parent_job_name.is_(None))
    if f.archived is not None:
        query = query.where(JobRow.archived.is_(f.archived))
    if f.statuses:
        query = query.where(JobRow.status.in_(f.statuses))
    for key, value in f.tags:
        query = query.where(_tag_condition(key, value))
    for c in f.clauses:
        query = query.where(condition(c, f.job_states))
    return query


def _duration(session: Session) -> Any:
    """Seconds from start to end (NULL while a job has not ended)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", JobRow.end_time - JobRow.start_time)
    return (func.julianday(JobRow.end_time) - func.julianday(JobRow.start_time)) * 86400.0


def _order_column(session: Session, query: Any, kind: str, key: str) -> tuple[Any, Any]:
    """The query joined to what it orders by, and the column; ``created_at`` is the id itself."""
    if kind == "metric":
        lm = aliased(LatestMetricRow, name="o_metric")
        query = query.outerjoin(lm, and_(lm.job_id == JobRow.id, lm.key == key, lm.is_nan.is_(False)))
        return query, lm.value
    if kind == "param":
        p = aliased(ParamRow, name="o_param")
        return query.outerjoin(p, and_(p.job_id == JobRow.id, p.key == key)), p.value
    if kind == "tag":
        t = aliased(RunTagRow, name="o_tag")
        query = query.outerjoin(t, and_(t.job_id == JobRow.id, t.key == key))
        return query, func.coalesce(_spec_tag(key), t.value)
    columns = {
        "name": JobRow.name,
        "display_name": func.coalesce(JobRow.run_name, JobRow.name),
        "status": JobRow.status,
        "start_time": JobRow.start_time,
        "end_time": JobRow.end_time,
        "duration": _duration(session),
    }
    return query, columns.get(key)


def search(
    session: Session, f: JobFilter, kind: str, key: str, ascending: bool, after: tuple[Any, int] | None, limit: int
) -> list[tuple[int, Any]]:
    """``(id, sort value)`` of up to ``limit`` jobs in order, after the ``after`` key (the last
    row's sort value and id). Ties are broken by id in the same direction; NULLs come last."""
    if kind == "metric":
        return _by_metric(session, f, key, ascending, after, limit)
    query, col = _order_column(session, _filtered(f, [JobRow.id]), kind, key)
    if col is None:  # created_at: the id is the order
        if after is not None:
            query = query.where(JobRow.id > after[1] if ascending else JobRow.id < after[1])
        query = query.order_by(JobRow.id.asc() if ascending else JobRow.id.desc()).limit(limit)
        return [(int(i), None) for i in session.scalars(query)]
    query = query.add_columns(col)
    if after is not None:
        value, last_id = after
        if isinstance(value, str) and key in ("start_time", "end_time") and kind == "attribute":
            value = datetime.fromisoformat(value)
        beyond = JobRow.id > last_id if ascending else JobRow.id < last_id
        if value is None:
            query = query.where(col.is_(None), beyond)
        else:
            past = col > value if ascending else col < value
            query = query.where(or_(past, and_(col == value, beyond), col.is_(None)))
    direction = col.asc() if ascending else col.desc()
    query = query.order_by(direction.nulls_last(), JobRow.id.asc() if ascending else JobRow.id.desc()).limit(limit)
    return [(int(i), v) for i, v in session.execute(query).all()]


def _by_metric(
    session: Session, f: JobFilter, key: str, ascending: bool, after: tuple[Any, int] | None, limit: int
) -> list[tuple[int, Any]]:
    """Ordered by a metric's last value, in two walks: the jobs that have the metric, read in the
    order of ``ix_latest_metric_value`` (an inner join, which the database can walk and stop at
    the page's end, instead of sorting every job), then those without it (NULLs last), by id.
    The filter's own clauses on that metric go on the join."""
    out: list[tuple[int, Any]] = []
    beyond = (lambda last: JobRow.id > last) if ascending else (lambda last: JobRow.id < last)
    by_id = JobRow.id.asc() if ascending else JobRow.id.desc()
    if after is None or after[0] is not None:
        on_metric = [c for c in f.clauses if c.kind == "metric" and c.key == key]
        rest = JobFilter(**{**f.__dict__, "clauses": [c for c in f.clauses if c not in on_metric]})
        lm = aliased(LatestMetricRow, name="o_metric")
        query = _filtered(rest, [JobRow.id, lm.value], walk_other_index=True).join(
            lm, and_(lm.job_id == JobRow.id, lm.key == key, lm.is_nan.is_(False))
        )
        for c in on_metric:
            query = query.where(compare(lm.value, c.op, c.value))
        if after is not None:
            value, last_id = after
            past = lm.value > value if ascending else lm.value < value
            query = query.where(or_(past, and_(lm.value == value, beyond(last_id))))
        query = query.order_by(lm.value.asc() if ascending else lm.value.desc(), by_id).limit(limit)
        out = [(int(i), v) for i, v in session.execute(query).all()]
        if len(out) >= limit or any(c.kind == "metric" and c.key == key for c in f.clauses):
            return out  # a filter on the metric leaves out the jobs without it
        after = None
    missing = ~exists().where(
        LatestMetricRow.job_id == JobRow.id, LatestMetricRow.key == key, LatestMetricRow.is_nan.is_(False)
    )
    query = _filtered(f, [JobRow.id]).where(missing)
    if after is not None:
        query = query.where(beyond(after[1]))
    query = query.order_by(by_id).limit(limit - len(out))
    return out + [(int(i), None) for i in session.scalars(query)]


def count_upto(session: Session, f: JobFilter, cap: int) -> int:
    """How many jobs match, counting no further than ``cap``."""
    inner = _filtered(f, [JobRow.id]).limit(cap).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def newest_ids(session: Session, f: JobFilter, limit: int) -> list[int]:
    return list(session.scalars(_filtered(f, [JobRow.id]).order_by(JobRow.id.desc()).limit(limit)))


def keys_of(session: Session, ids: list[int]) -> tuple[list[str], list[str], list[str]]:
    """The metric, param and (run) tag keys the jobs hold, sorted."""
    if not ids:
        return [], [], []
    out = []
    for table in (LatestMetricRow, ParamRow, RunTagRow):
        out.append(sorted(set(session.scalars(select(table.key).where(table.job_id.in_(ids)).distinct()))))
    return out[0], out[1], out[2]


def spec_tags_of(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return [t for t in session.scalars(select(JobRow.spec["tags"]).where(JobRow.id.in_(ids))) if isinstance(t, dict)]


def experiments_with_counts(session: Session, ws_id: int) -> list[tuple[str, str, int]]:
    """The workspace's active experiments: (MLflow id, name, top-level job count), by name. The
    count reads ``ix_job_experiment_list`` alone (no job rows), so it stays cheap at 100,000 jobs."""
    experiments = session.execute(
        select(ExperimentRow.id, ExperimentRow.name, ExperimentRow.is_default)
        .where(ExperimentRow.workspace_id == ws_id, ExperimentRow.lifecycle_stage == "active")
        .order_by(ExperimentRow.name)
    ).all()
    ids = [int(e[0]) for e in experiments]
    counts: dict[int, int] = {}
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        counts.update(
            session.execute(
                select(JobRow.experiment_id, func.count())
                .where(JobRow.experiment_id.in_(chunk), JobRow.parent_job_name.is_(None))
                .group_by(JobRow.experiment_id)
            ).all()
        )
    return [("0" if d else str(i), str(n), int(counts.get(int(i), 0))) for i, n, d in experiments]


def jobs_mentioning(session: Session, ws_id: int, text: str, scan: int) -> tuple[list[JobRow], bool]:
    """Jobs among the newest ``scan`` of a workspace whose resolved inputs or spec mention
    ``text`` (the caller checks what each mention means); and whether older jobs went unscanned."""
    newest = select(JobRow.id).where(JobRow.workspace_id == ws_id).order_by(JobRow.id.desc()).limit(scan).subquery()
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    from_json = cast(JobRow.resolved, Text)
    from_spec = cast(JobRow.spec, Text)
    query = (
        select(JobRow)
        .where(JobRow.id.in_(select(newest.c.id)))
        .where(or_(from_json.like(pattern, escape="\\"), from_spec.like(pattern, escape="\\")))
        .order_by(JobRow.id.desc())
    )
    found = list(session.scalars(query))
    total = session.scalar(select(func.count()).select_from(JobRow).where(JobRow.workspace_id == ws_id)) or 0
    return found, int(total) > scan


def live_row(session: Session, ws_id: int, name: str) -> tuple[int, str, datetime] | None:
    """(id, status, updated_at) of a job: what a watching page checks, without the job's JSON."""
    found = session.execute(
        select(JobRow.id, JobRow.status, JobRow.updated_at).where(JobRow.workspace_id == ws_id, JobRow.name == name)
    ).first()
    return None if found is None else (int(found[0]), str(found[1]), found[2])


def child_status_counts(session: Session, ws_id: int, parent: str) -> dict[str, int]:
    """How many children of a job are in each state. Counted here, not by GROUP BY: a GROUP BY on
    status makes SQLite walk ``ix_job_status_list`` (every job of the workspace) instead of the
    parent's few rows in ``ix_job_parent``."""
    counts: dict[str, int] = {}
    for status in session.scalars(
        select(JobRow.status).where(JobRow.workspace_id == ws_id, JobRow.parent_job_name == parent)
    ):
        counts[status] = counts.get(status, 0) + 1
    return counts
