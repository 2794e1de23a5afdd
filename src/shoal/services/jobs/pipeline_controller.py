"""The pipeline controller, run in the dispatcher's tick.

The controller runs in the dispatcher's tick. A step whose upstream steps have all completed gets
its inputs (their outputs' locations), its reuse key, and then either completes at once from an
earlier job with the same key or is queued for the dispatcher like any command job. A step whose
upstream failed or was canceled is canceled, saying which. Each pipeline's state follows its
children's; a failed step cancels the rest of its pipeline unless ``continue_on_step_failure``;
cancel of a pipeline cancels every step. Everything lives in the database, so a server restart
mid-pipeline picks up where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.entities.pipeline_graph.type_rules import coerce_literal
from shoal.entities.refs import parse_path
from shoal.entities.status import ACTIVE, TERMINAL, JobStatus
from shoal.errors import ShoalError
from shoal.services.context import ServiceContext
from shoal.services.jobs import reuse, sweeps
from shoal.services.jobs import state as job_state
from shoal.services.jobs.pipeline_submission import PIPELINE, STEP_PROPERTY
from shoal.services.storage import files
from shoal.store import jobs as job_rows
from shoal.store.tables import JobRow

logger = logging.getLogger(__name__)
S = JobStatus


def advance(ctx: ServiceContext, on_queued: Callable[[], None] | None = None) -> None:
    """Start ready steps and roll states up until nothing changes (reused chains finish in one call).
    ``on_queued`` (the dispatcher's scheduling) runs as soon as a pass has queued steps, so their
    runners start before the roll-up and the next pass, not after them."""
    for _ in range(1000):
        # One pass settles every step the current states allow (see _start_ready_steps): another
        # is needed only when rolling up changed a state (a nested pipeline ended, steps canceled).
        if _start_ready_steps(ctx) and on_queued is not None:
            on_queued()
        if not _roll_up(ctx):
            return


def _output_location(row: JobRow | _Step, output: str) -> str | None:
    if output == "artifacts":
        art = row.resolved.get("artifacts") or {}
        if not art:
            return None
        return f"azureml://datastores/{art['datastore']}/paths/{art['path']}/"
    out = (row.resolved.get("outputs") or {}).get(output) or {}
    path = out.get("path")
    if path is None:
        return None
    if out.get("type") != "uri_file" and not str(path).endswith("/"):
        path = f"{path}/"
    return str(path)


@dataclass
class _Step:
    """What the controller needs of a job, read once per pass."""

    id: int
    name: str
    workspace_id: int
    status: str
    resolved: dict[str, Any]


def _snapshot(row: JobRow) -> _Step:
    return _Step(row.id, row.name, row.workspace_id, row.status, row.resolved or {})


def _start_ready_steps(ctx: ServiceContext) -> bool:
    """One pass over the waiting steps. A reused step counts as completed at once, so a chain of
    reused steps is settled in this one pass, not one pass per step.

    A pass looks at states first (each waiting step's ``depends_on`` and its upstream jobs'
    states); only the steps that can move now, and the jobs whose outputs they take, are read
    whole. A tick of a 100-step chain reads one step and one producer, not the whole pipeline."""
    with ctx.db.read() as session:
        waiting = [w for w in job_rows.waiting_dependencies(session, str(S.NOT_STARTED)) if w[3] is not None]
        if not waiting:
            return False
        states = job_rows.states_by_name(session, {d for w in waiting for d in w[3]})
        ws_names = job_rows.workspace_names(session)
    read: dict[tuple[int, str], _Step] = {}  # jobs read whole this pass, by (workspace, name)
    changed = False
    while waiting:
        movable = [w for w in waiting if _can_move([states.get((w[2], d)) for d in w[3]])]
        if not movable:
            break
        steps = _read_whole(ctx, movable, states, read)
        for job_id, name, ws_id, depends_on in movable:
            waiting.remove((job_id, name, ws_id, depends_on))
            step = steps.get(job_id)
            if step is None or step.status != S.NOT_STARTED:
                continue  # gone, or moved by someone else since the states were read
            upstream = [(d, states.get((ws_id, d))) for d in depends_on]
            gone = [d for d, st in upstream if st is None]
            ended = [(d, st) for d, st in upstream if st in (S.FAILED, S.CANCELED)]
            if gone or ended:
                what = f"job '{gone[0]}' no longer exists" if gone else f"job '{ended[0][0]}' ended {ended[0][1]}"
                step.status = _skip(ctx, step.id, what)
            else:
                step.status = _start_one(ctx, step, read, ws_names[ws_id])
            states[(ws_id, name)] = step.status
            read[(ws_id, name)] = step
            changed = True
    return changed


def _can_move(upstream: list[str | None]) -> bool:
    """A waiting step starts when every upstream job completed, and is skipped when one is gone
    or ended otherwise; else it waits."""
    return all(st == S.COMPLETED for st in upstream) or any(
        st is None or st in (S.FAILED, S.CANCELED) for st in upstream
    )


def _read_whole(
    ctx: ServiceContext,
    movable: list[tuple[int, str, int, list[str]]],
    states: dict[tuple[int, str], str],
    read: dict[tuple[int, str], _Step],
) -> dict[int, _Step]:
    """The movable steps (by id), and into ``read`` the completed upstream jobs they take outputs
    from, in one read."""
    producers = {(ws, d) for _, _, ws, deps in movable for d in deps if states.get((ws, d)) == S.COMPLETED}
    producers -= read.keys()
    ids = {w[0] for w in movable}
    steps: dict[int, _Step] = {}
    with ctx.db.read() as session:
        for row in job_rows.for_a_pass(session, ids=ids, names={d for _, d in producers}):
            snap = _snapshot(row)
            if row.id in ids:
                steps[row.id] = snap
            if (row.workspace_id, row.name) in producers:
                read[(row.workspace_id, row.name)] = snap
    return steps


def _start_one(ctx: ServiceContext, step: _Step, read: dict[tuple[int, str], _Step], workspace: str) -> str:
    """Start a step whose upstream jobs all completed; its new state (it may fail here)."""
    try:
        inputs = _ready_inputs(step, read)
    except _MissingControlValue as exc:
        return _fail(ctx, step.id, {"code": "CONTROL_OUTPUT_MISSING", "message": str(exc)})
    try:
        status, step.resolved = _start(ctx, step.id, workspace, inputs)
        return status
    except Exception as exc:  # noqa: BLE001 - one bad step must not stall every pipeline
        logger.exception("cannot start pipeline step %s", step.name)
        error = {"code": "STEP_START_FAILED", "message": f"cannot start the step: {exc}"}
        return _fail(ctx, step.id, error)


def _ready_inputs(step: _Step, known: dict[tuple[int, str], _Step]) -> dict[str, Any]:
    """The step's inputs with each upstream output's location filled in."""
    inputs = {}
    for name, entry in step.resolved.get("inputs", {}).items():
        if "pending" in entry:
            src = entry["pending"]
            producer = known[(step.workspace_id, src["job"])]
            entry = {k: v for k, v in entry.items() if k != "pending"}
            entry["source"] = f"azureml://jobs/{src['job']}/outputs/{src['output']}"
            if entry.get("control"):
                entry["value"] = _control_value(producer, src["output"], entry, name)
            else:
                entry["uri"] = _output_location(producer, src["output"])
        inputs[name] = entry
    return inputs


class _MissingControlValue(Exception):
    """A required input bound to a control output the producer's job did not write."""


def _control_value(producer: _Step, output: str, entry: dict[str, Any], name: str) -> Any:
    """The value a producer's job wrote to its control output, as the consuming input's type."""
    value = ((producer.resolved.get("outputs") or {}).get(output) or {}).get("value")
    if value is None:
        if not entry.get("optional"):
            raise _MissingControlValue(
                f"input '{name}' is bound to control output '{output}' of job '{producer.name}', "
                "which that job did not write"
            )
        return None
    return coerce_literal(entry["type"], value)


def _skip(ctx: ServiceContext, job_id: int, why: str) -> str:
    with ctx.db.write() as session:
        row = job_rows.locked(session, job_id)
        if row is None:
            return str(S.CANCELED)
        if row.status == S.NOT_STARTED:
            job_state.transition(
                row, S.CANCELED, error={"code": "UPSTREAM_NOT_COMPLETED", "message": f"not run: upstream {why}"}
            )
        return row.status


def _fail(ctx: ServiceContext, job_id: int, error: dict[str, Any]) -> str:
    with ctx.db.write() as session:
        row = job_rows.locked(session, job_id)
        if row is None:
            return str(S.FAILED)
        if row.status not in TERMINAL:
            job_state.transition(row, S.FAILED, error=error)
        return row.status


def _start(ctx: ServiceContext, job_id: int, workspace: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Queue the step, or complete it from an earlier job with the same reuse key."""
    with ctx.db.read() as session:
        row = job_rows.by_id(session, job_id)
        if row is None or row.status != S.NOT_STARTED:
            return (row.status, row.resolved) if row is not None else (str(S.CANCELED), {})
        settings = dict(row.resolved.get("reuse") or {})
        ws_id = row.workspace_id
        kind = row.type
    if kind == "sweep":
        return _start_sweep(ctx, job_id, inputs)
    input_parts = reuse.input_parts(ctx, workspace, inputs)
    parts = {**settings.get("static", {}), "inputs": input_parts}
    key = reuse.key_of(settings.get("static", {}), input_parts)
    source: JobRow | None = None
    reason = settings.get("reason")
    if settings.get("enabled"):
        source, reason = _reusable(ctx, workspace, ws_id, key, job_id)
    with ctx.db.write() as session:
        row = job_rows.locked(session, job_id)
        if row is None or row.status != S.NOT_STARTED:
            return (row.status, row.resolved) if row is not None else (str(S.CANCELED), {})
        resolved = dict(row.resolved)
        resolved["inputs"] = inputs
        spec = dict(row.spec)
        spec_inputs = dict(spec.get("inputs") or {})
        for name, entry in inputs.items():
            if entry.get("control"):
                spec_inputs[name] = entry.get("value")  # the value the upstream job wrote
            elif entry.get("source"):
                spec_inputs[name] = {"type": entry["type"], "path": entry["source"], "mode": entry.get("mode")}
        spec["inputs"] = spec_inputs
        info: dict[str, Any] = {"reused": source is not None, "key": key, "reason": reason, "parts": parts}
        row.reuse_key = key
        job_state.transition(row, S.QUEUED)
        if source is not None:
            # A reused job's own origin: the job that ran (its logs and artifacts are there).
            origin = source.resolved.get("reused_from") or source.name
            info["from_job"] = origin
            resolved["outputs"] = source.resolved.get("outputs") or {}
            resolved["artifacts"] = source.resolved.get("artifacts") or resolved.get("artifacts")
            resolved["reused_from"] = origin
            spec["outputs"] = {
                k: {kk: vv for kk, vv in v.items() if kk in ("type", "mode", "path", "name", "version")}
                for k, v in resolved["outputs"].items()
            }
        spec["properties"] = {**(spec.get("properties") or {}), "reuse": info}
        row.spec = spec
        row.resolved = resolved
        if source is not None:
            job_state.transition(row, S.COMPLETED)
        outcome = (row.status, resolved)
    # No wake-up of the dispatcher: this runs in its tick, which schedules the step right away
    # (advance's on_queued, then _schedule); a wake-up would only buy an idle pass over every step.
    return outcome


def _start_sweep(ctx: ServiceContext, job_id: int, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A sweep step's inputs are ready: its trials may start (the sweep controller takes over)."""
    with ctx.db.write() as session:
        row = job_rows.locked(session, job_id)
        if row is None or row.status != S.NOT_STARTED:
            return (row.status, row.resolved) if row is not None else (str(S.CANCELED), {})
        row.resolved = sweeps.fill_inputs(row.resolved, inputs)
        job_state.transition(row, S.QUEUED)
        outcome = (row.status, row.resolved)
    ctx.notify_jobs()
    return outcome


def _reusable(ctx: ServiceContext, workspace: str, ws_id: int, key: str, job_id: int) -> tuple[JobRow | None, str]:
    """The newest completed job with this key whose outputs are all still there."""
    with ctx.db.read() as session:
        candidates = job_rows.completed_with_reuse_key(session, ws_id, key, str(S.COMPLETED), not_id=job_id)
    if not candidates:
        return None, "no earlier completed job has the same component, code, environment, inputs and parameters"
    for candidate in candidates:
        if _outputs_exist(ctx, workspace, candidate):
            origin = candidate.resolved.get("reused_from") or candidate.name
            return candidate, (
                f"job '{origin}' completed with the same component, code, environment, inputs and parameters"
            )
    return None, f"job '{candidates[0].name}' had the same key, but its outputs are gone"


def _outputs_exist(ctx: ServiceContext, workspace: str, row: JobRow) -> bool:
    for out in (row.resolved.get("outputs") or {}).values():
        path = out.get("path")
        if not path:
            continue
        ref = parse_path(str(path))
        if ref.scheme != "datastore":
            continue
        # Object stores are asked too: a step is reused only where its outputs really are (a
        # datastore pointed elsewhere, or files deleted from the bucket, make it run again).
        try:
            if not files.store_for(ctx, workspace, ref.datastore).exists((ref.path or "").strip("/")):
                return False
        except ShoalError:
            return False
    return True


def _roll_up(ctx: ServiceContext) -> bool:
    with ctx.db.read() as session:
        pipes = job_rows.with_status(session, ACTIVE, types=[PIPELINE], newest_first=True, light=True)
        if not pipes:
            return False
        counts = job_rows.child_state_counts(session, [(p.workspace_id, p.name) for p in pipes])
        plans = []
        for pipe in pipes:
            if _steady(pipe, counts.get((pipe.workspace_id, pipe.name), {})):
                continue  # the common tick: steps running, nothing to roll up (no step read)
            children = job_rows.children(session, pipe.workspace_id, pipe.name, states_only=True)
            plans.append((pipe.id, _plan(pipe, children)))
    changed = False
    for pipe_id, (target, cancel_ids, error) in plans:
        if cancel_ids:
            _cancel_children(ctx, cancel_ids)
            changed = True
        if target is not None:
            changed = _move_pipeline(ctx, pipe_id, target, error) or changed
    if changed:
        ctx.notify_jobs()
    return changed


def _steady(pipe: JobRow, counts: dict[str, int]) -> bool:
    """True where ``_plan`` would change nothing, judged from the children's state counts alone:
    not canceling, no step failed, some step still active, and the pipeline already past Queued
    (or none of its steps started)."""
    if pipe.status == S.CANCEL_REQUESTED or counts.get(S.FAILED) or not counts:
        return False
    if all(status in TERMINAL for status in counts):
        return False
    started = any(status not in (S.NOT_STARTED, S.QUEUED) for status in counts)
    return not (started and pipe.status == S.QUEUED)


def _plan(pipe: JobRow, children: list[JobRow]) -> tuple[JobStatus | None, list[int], dict[str, Any] | None]:
    canceling = pipe.status == S.CANCEL_REQUESTED
    failed = [c for c in children if c.status == S.FAILED]
    stop = canceling or (failed and not pipe.resolved.get("continue_on_step_failure"))
    cancel_ids = [c.id for c in children if stop and c.status not in TERMINAL and c.status != S.CANCEL_REQUESTED]
    if children and all(c.status in TERMINAL for c in children):
        if canceling:
            return S.CANCELED, [], None
        if failed:
            step = failed[0]
            label = (step.spec.get("properties") or {}).get(STEP_PROPERTY) or step.name
            message = f"step '{label}' (job {step.name}) failed"
            why = (step.error or {}).get("message")
            if why:  # the step's own reason (a nested pipeline's names its step in turn)
                message += f": {why}"
            return S.FAILED, [], {"code": "STEP_FAILED", "message": message}
        if any(c.status == S.CANCELED for c in children):
            return S.CANCELED, [], None
        return S.COMPLETED, [], None
    if not children:
        return (S.CANCELED if canceling else S.COMPLETED), [], None
    started = any(c.status not in (S.NOT_STARTED, S.QUEUED) for c in children)
    if started and pipe.status == S.QUEUED:
        return S.RUNNING, cancel_ids, None
    return None, cancel_ids, None


def _cancel_children(ctx: ServiceContext, ids: list[int]) -> None:
    with ctx.db.write() as session:
        for job_id in ids:
            row = job_rows.locked(session, job_id)
            if row is None or row.status in TERMINAL or row.status == S.CANCEL_REQUESTED:
                continue
            if row.type not in (PIPELINE, "sweep") and row.status in (S.NOT_STARTED, S.QUEUED):
                job_state.transition(row, S.CANCELED)
            else:
                job_state.transition(row, S.CANCEL_REQUESTED)


def _move_pipeline(ctx: ServiceContext, pipe_id: int, target: JobStatus, error: dict[str, Any] | None) -> bool:
    with ctx.db.write() as session:
        row = job_rows.locked(session, pipe_id)
        if row is None or row.status in TERMINAL or row.status == target:
            return False
        if target == S.CANCELED and row.status != S.CANCEL_REQUESTED:
            job_state.transition(row, S.CANCEL_REQUESTED)
        if target == S.COMPLETED:
            row.resolved = {**row.resolved, "outputs": _final_outputs(session, row)}
        job_state.transition(row, target, error=error)
        return True


def _final_outputs(session: Any, row: JobRow) -> dict[str, Any]:
    """The pipeline's outputs: where the step outputs they are bound to ended up."""
    out = {}
    for name, entry in (row.resolved.get("outputs") or {}).items():
        entry = dict(entry)
        bound = entry.get("bound")
        if bound:
            producer = job_rows.find(session, row.workspace_id, bound["job"])
            if producer is not None:
                location = _output_location(producer, bound["output"])
                if location is None and producer.type == PIPELINE:
                    inner = (producer.resolved.get("outputs") or {}).get(bound["output"]) or {}
                    location = inner.get("path")
                if location:
                    entry["path"] = location
                value = ((producer.resolved.get("outputs") or {}).get(bound["output"]) or {}).get("value")
                if value is not None:  # a control output bound to the pipeline's output
                    entry["value"] = value
        out[name] = entry
    return out
