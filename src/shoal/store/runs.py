"""Job rows seen as MLflow runs (a run is a job, its id the job's name): the run lookups of the
tracking services, their write shortcuts, and run search.

The search builds one query of ids (the page's rows are read after): its shape was tuned, see
:func:`search_ids`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from shoal.errors import UserError
from shoal.store.tables import JobRow, LatestMetricRow, ParamRow, RunTagRow, WorkspaceRow
from shoal.store.tracking import compare

# -- lookups --------------------------------------------------------------------------------

# The run a write goes to, in one query: its id and whether it is active.
_RUN_REF = (
    select(JobRow.id, JobRow.lifecycle_stage)
    .join(WorkspaceRow, WorkspaceRow.id == JobRow.workspace_id)
    .where(WorkspaceRow.name == bindparam("workspace"), JobRow.name == bindparam("run"))
)


def ref(session: Session, workspace: str, run_id: str) -> tuple[int, str] | None:
    """A run's job id and lifecycle stage by workspace name, in one query, without loading the job."""
    found = session.execute(_RUN_REF, {"workspace": workspace, "run": run_id}).first()
    return None if found is None else (int(found[0]), str(found[1]))


def job_id(session: Session, ws_id: int, run_id: str) -> int | None:
    return session.scalar(select(JobRow.id).where(JobRow.workspace_id == ws_id, JobRow.name == run_id))


def name_of(session: Session, job_id: int | None) -> str | None:
    """The run id (job name) of a job row id; None for no id."""
    if job_id is None:
        return None
    return session.scalar(select(JobRow.name).where(JobRow.id == job_id))


def ids_by_name(session: Session, ws_id: int, names: list[str]) -> dict[str, int]:
    return dict(
        session.execute(
            select(JobRow.name, JobRow.id).where(JobRow.workspace_id == ws_id, JobRow.name.in_(names))
        ).all()
    )


def experiment_of(session: Session, ws_id: int, run_id: str) -> int | None:
    """The experiment row id of a run (None when it has none or does not exist)."""
    return session.scalar(select(JobRow.experiment_id).where(JobRow.workspace_id == ws_id, JobRow.name == run_id))


def parent_and_tag(session: Session, ws_id: int, run_id: str, tag: str) -> tuple[str | None, str | None] | None:
    """A run's parent run id and the value of one of its tags, in one query; None if no such run."""
    found = session.execute(
        select(JobRow.parent_job_name, RunTagRow.value)
        .outerjoin(RunTagRow, (RunTagRow.job_id == JobRow.id) & (RunTagRow.key == tag))
        .where(JobRow.workspace_id == ws_id, JobRow.name == run_id)
    ).first()
    return None if found is None else (found[0], found[1])


def by_ids(session: Session, ids: list[int]) -> dict[int, JobRow]:
    out: dict[int, JobRow] = {}
    for start in range(0, len(ids), 10_000):  # SQLite caps bound parameters at 32,766
        chunk = ids[start : start + 10_000]
        out.update((r.id, r) for r in session.scalars(select(JobRow).where(JobRow.id.in_(chunk))))
    return out


# -- writes ---------------------------------------------------------------------------------


def set_run_name(session: Session, job_id: int, name: str) -> None:
    session.execute(update(JobRow).where(JobRow.id == job_id).values(run_name=name))


def rename_experiment(session: Session, experiment_id: int, name: str) -> None:
    """The experiment name every run of the experiment carries."""
    session.execute(update(JobRow).where(JobRow.experiment_id == experiment_id).values(experiment_name=name))


def set_experiment_stage(session: Session, experiment_id: int, stage: str) -> None:
    """The lifecycle stage of every run of an experiment."""
    session.execute(update(JobRow).where(JobRow.experiment_id == experiment_id).values(lifecycle_stage=stage))


# -- search ---------------------------------------------------------------------------------

ATTR_COLUMNS = ("run_id", "run_name", "status", "user_id", "start_time", "end_time", "lifecycle_stage", "created")


def attr(key: str) -> Any:
    if key == "run_id":
        return JobRow.name
    if key == "run_name":
        return func.coalesce(JobRow.run_name, JobRow.name)
    if key == "user_id":
        return func.coalesce(JobRow.user_id, "")
    if key in ("start_time", "created"):
        return func.coalesce(JobRow.start_time, JobRow.created_at)
    if key == "end_time":
        return JobRow.end_time
    if key == "lifecycle_stage":
        return JobRow.lifecycle_stage
    raise UserError(f"Invalid attribute key '{key}' specified. Valid keys are {list(ATTR_COLUMNS)}")


def _dt(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def condition(c: Any, job_states: dict[str, list[str]]) -> Any:
    """The SQL condition of one filter clause (``kind``, ``key``, ``op``, ``value``).
    ``job_states``: the job states each run status a ``status`` clause may name stands for."""
    if c.kind == "metric":
        return exists().where(
            LatestMetricRow.job_id == JobRow.id,
            LatestMetricRow.key == c.key,
            LatestMetricRow.is_nan.is_(False),
            compare(LatestMetricRow.value, c.op, c.value),
        )
    if c.kind == "param":
        return exists().where(
            ParamRow.job_id == JobRow.id, ParamRow.key == c.key, compare(ParamRow.value, c.op, c.value)
        )
    if c.kind == "tag":
        if c.key == "mlflow.runName":
            return compare(attr("run_name"), c.op, c.value)
        return exists().where(
            RunTagRow.job_id == JobRow.id, RunTagRow.key == c.key, compare(RunTagRow.value, c.op, c.value)
        )
    if c.kind == "attribute":
        if c.key == "status":
            values = c.value if isinstance(c.value, tuple) else (c.value,)
            wanted = [s for v in values for s in job_states.get(str(v).upper(), [])]
            if c.op in ("=", "IN", "LIKE", "ILIKE"):
                return JobRow.status.in_(wanted)
            if c.op in ("!=", "NOT IN"):
                return JobRow.status.not_in(wanted)
            raise UserError(f"Invalid comparator '{c.op}' for attribute 'status'")
        if c.key in ("start_time", "end_time", "created"):
            if not isinstance(c.value, float):
                raise UserError(f"Expected a numeric value for attribute '{c.key}'. Got {c.value!r}")
            return compare(attr(c.key), c.op, _dt(c.value))
        if isinstance(c.value, float):
            raise UserError(f"Expected a quoted string value for attribute '{c.key}'. Got {c.value!r}")
        return compare(attr(c.key), c.op, c.value)
    raise UserError(f"Searching runs by {c.kind} is not supported")


def _order_column(query: Any, o: Any, n: int, *, present: Any = None) -> tuple[Any, Any]:
    """The query joined to what ``o`` orders by, and the column. ``present``: the filter's clauses
    on this metric, which every run found must then have: they go on an inner join, which lets
    the database walk the metric's values in index order instead of sorting every run."""
    if o.kind == "metric":
        lm = aliased(LatestMetricRow, name=f"o{n}")
        if present is None:
            return query.outerjoin(lm, and_(lm.job_id == JobRow.id, lm.key == o.key)), lm.value
        query = query.join(lm, and_(lm.job_id == JobRow.id, lm.key == o.key))
        for c in present:  # the filter's EXISTS on this metric, said on the joined row instead
            query = query.where(lm.is_nan.is_(False), compare(lm.value, c.op, c.value))
        return query, lm.value
    if o.kind in ("param", "tag"):
        table = ParamRow if o.kind == "param" else RunTagRow
        al = aliased(table, name=f"o{n}")
        query = query.outerjoin(al, and_(al.job_id == JobRow.id, al.key == o.key))
        return query, al.value
    if o.kind == "attribute":
        if o.key == "status":
            return query, JobRow.status
        return query, attr(o.key)
    raise UserError(f"Invalid order_by entity type '{o.kind}'")


def search_ids(
    session: Session,
    ws_id: int,
    stages: tuple[str, ...],
    exp_ids: list[int | None],
    clauses: list[Any],
    orders: list[Any],
    offset: int,
    limit: int,
    job_states: dict[str, list[str]],
) -> list[int]:
    """Ids of the runs found, in order, from ``offset``: at most ``limit`` of them
    (``job_states``: see :func:`condition`).

    Ids first, whole rows for the page only (:func:`by_ids`): sorting 100,000 runs with their
    JSON columns cost several times more than sorting their ids."""
    query = select(JobRow.id).where(JobRow.workspace_id == ws_id, JobRow.lifecycle_stage.in_(stages))
    query = query.where(JobRow.experiment_id.in_(exp_ids))
    # A metric both filtered on and ordered by is joined once, with its clauses on the join.
    on_join: dict[str, list[Any]] = {}
    for o in orders:
        if o.kind == "metric" and o.key not in on_join:
            named = [c for c in clauses if c.kind == "metric" and c.key == o.key]
            if named:
                on_join[o.key] = named
    for c in clauses:
        if not (c.kind == "metric" and c.key in on_join):
            query = query.where(condition(c, job_states))
    order_cols = []
    for n, o in enumerate(orders):
        present = on_join.pop(o.key, None) if o.kind == "metric" else None
        query, col = _order_column(query, o, n, present=present)
        if present is not None:  # never NULL: plain order, which an index walked either way gives
            order_cols.append(col.asc() if o.ascending else col.desc())
        else:
            order_cols.append(col.asc().nulls_last() if o.ascending else col.desc().nulls_last())
    if not any(o.kind == "attribute" and o.key in ("start_time", "created") for o in orders):
        order_cols.append(attr("start_time").desc())
    query = query.order_by(*order_cols, JobRow.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(query))
