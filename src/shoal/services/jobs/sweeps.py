"""Sweep jobs: submission and the controller that runs their trials.

Submission checks the search space, the sampling algorithm, the policy and Azure's rules on how
they combine (``entities/sweep/``), and resolves the trial as a command job once (environment,
code, inputs, compute), so a bad sweep is refused before anything is stored. The sweep is stored
``Queued``; its trials are created by the controller.

The controller runs in the dispatcher's tick. For each sweep it:

1. ends it when asked to cancel or when ``limits.timeout`` has passed (every trial is canceled);
2. reads the primary metric of its trials (what their scripts log with MLflow) and applies the
   early termination policy; a trial it stops is canceled with the policy and values recorded;
3. creates trials while fewer than ``max_concurrent_trials`` are unfinished and fewer than
   ``max_total_trials`` exist: trial ``i`` is a child command job ``<sweep>_<i>`` whose
   parameters come from ``sweep_sampling.next_params`` (a pure function of the sweep's seed, ``i``
   and, for bayesian, the finished trials), so a restarted server carries on with the same
   sequence and never creates a trial twice (the name is unique);
4. when every trial has ended and no more are due, records the best trial
   (``properties.best_child_run_id``, its metric value) and completes.

A trial's parameters reach its command as ``${{search_space.x}}`` (rewritten to an input
``${{inputs.x}}``), as inputs (the SDK form) and as ``AZUREML_SWEEP_<x>`` variables. A trial that
never logs the primary metric is marked so and not ranked.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from datetime import timedelta
from typing import Any

from shoal.entities.expressions import EXPRESSION_RE
from shoal.entities.kinds import parse_entity
from shoal.entities.names import generate_job_name
from shoal.entities.status import ACTIVE, TERMINAL, JobStatus
from shoal.entities.sweep.early_termination import parse_early_termination
from shoal.entities.sweep.objective import Objective, SweepJobLimits
from shoal.entities.sweep.rules import check_sweep_rules
from shoal.entities.sweep.sampling import parse_sampling_algorithm
from shoal.entities.sweep.search_space import parse_search_space
from shoal.errors import ShoalError, SpecError
from shoal.services.context import ServiceContext
from shoal.services.jobs import early_termination, sweep_sampling
from shoal.services.jobs import state as job_state
from shoal.services.jobs.command import prepare_command
from shoal.services.references import resolution as references
from shoal.store import jobs as job_rows
from shoal.store import tracking as tracking_rows
from shoal.store.tables import JobRow

logger = logging.getLogger(__name__)
S = JobStatus
SWEEP = "sweep"
TRIAL_FIELDS = ("command", "code", "environment", "environment_variables", "resources", "distribution")


# -- submission -----------------------------------------------------------------------------


def _field_error(exc: ShoalError, field: str) -> ShoalError:
    if not exc.message.startswith(field):
        exc.message = f"{field}: {exc.message}"
        exc.args = (exc.message,)
    return exc


def _trial_definition(ctx: ServiceContext, workspace: str, trial: Any) -> dict[str, Any]:
    """The trial as a command definition: inline, or a registered command component."""
    if isinstance(trial, str):
        trial = references.resolve_component(ctx, workspace, trial, "trial")
    if not isinstance(trial, dict):
        raise SpecError("trial: must be a command (command, environment, code) or a command component")
    if (trial.get("type") or "command") != "command":
        raise SpecError(f"trial: a sweep's trial must be a command, not {trial.get('type')!r}")
    if not trial.get("command"):
        raise SpecError("trial.command: a sweep's trial needs a command")
    return trial


def _space_references(command: str, space: dict[str, Any]) -> str:
    """``${{search_space.x}}`` → ``${{inputs.x}}`` (each parameter is an input of the trial)."""

    def sub(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref.startswith("search_space."):
            name = ref.split(".", 1)[1]
            if name not in space:
                declared = ", ".join(sorted(space)) or "none"
                raise SpecError(
                    f"trial.command: ${{{{{ref}}}}} names no search space parameter (search_space: {declared})"
                )
            return "${{inputs." + name + "}}"
        return match.group(0)

    return EXPRESSION_RE.sub(sub, command)


def _template(data: dict[str, Any], trial: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """The command job every trial is made from (its search space inputs still unset)."""
    template: dict[str, Any] = {"type": "command"}
    for key in TRIAL_FIELDS:
        if trial.get(key) is not None:
            template[key] = trial[key]
    template["command"] = _space_references(str(trial["command"]), space)
    inputs: dict[str, Any] = {}
    for name, port in (trial.get("inputs") or {}).items():
        if isinstance(port, dict) and port.get("default") is not None:
            inputs[name] = (
                port["default"]
                if port.get("type") in ("integer", "number", "boolean", "string")
                else {
                    "type": port.get("type") or "uri_folder",
                    "path": port["default"],
                }
            )
    for name, value in (data.get("inputs") or {}).items():
        if name in space:
            raise SpecError(f"inputs.{name}: {name!r} is also a search space parameter; give it one place")
        inputs[name] = value
    template["inputs"] = inputs
    if data.get("outputs"):
        template["outputs"] = data["outputs"]
    for key in ("compute", "resources", "queue_settings", "identity"):
        if data.get(key) is not None:
            template[key] = data[key]
    return template


def _with_params(template: dict[str, Any], params: dict[str, Any], limits: SweepJobLimits) -> dict[str, Any]:
    spec = json.loads(json.dumps(template))
    inputs = dict(spec.get("inputs") or {})
    env = dict(spec.get("environment_variables") or {})
    for name, value in params.items():
        literal = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        inputs[name] = literal
    for name, value in sweep_sampling.flatten_params(params).items():
        env[f"AZUREML_SWEEP_{name.replace('.', '_')}"] = str(value)
    spec["inputs"] = inputs
    spec["environment_variables"] = env
    if limits.trial_timeout:
        spec["limits"] = {"timeout": limits.trial_timeout}
    return spec


def prepare(
    ctx: ServiceContext,
    workspace: str,
    name: str,
    clean: dict[str, Any],
    *,
    pending: dict[str, dict[str, Any]] | None = None,
    default_datastore: str | None = None,
    where: str = "sweep job",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sweep's spec checked and its trial resolved once (nothing stored).

    ``pending`` inputs (a sweep step of a pipeline) come from steps that have not run yet; they
    are filled into the trial template when the step starts."""
    pending = pending or {}
    data = parse_entity("job", clean, source=where).to_dict()
    for key in ("status", "start_time", "end_time", "error", "exit_code", "archived"):
        data.pop(key, None)
    space = parse_search_space(data.get("search_space"))
    algorithm = parse_sampling_algorithm(data.get("sampling_algorithm"))
    policy = parse_early_termination(data.get("early_termination"))
    check_sweep_rules(space, algorithm, policy)
    sweep_sampling.require_sampler_dependencies(algorithm)
    try:
        objective = Objective.model_validate(data.get("objective") or {})
        limits = SweepJobLimits.model_validate(data.get("limits") or {})
    except ValueError as exc:
        raise SpecError(f"{where}: objective or limits: {exc}") from None
    trial = _trial_definition(ctx, workspace, data.get("trial"))
    template = _template(data, trial, space)
    seed = secrets.randbelow(2**31)
    first = sweep_sampling.next_params(space, algorithm, sweep_seed=seed, history=[], goal=objective.goal, index=0)
    if first is None:
        raise SpecError("search_space: it has no point to try")
    # Resolve the trial once now: a missing environment, code, input or compute fails the submit.
    extra = {"default_datastore": default_datastore} if default_datastore else {}
    try:
        _, trial_resolved = prepare_command(
            ctx, workspace, f"{name}_0", _with_params(template, first, limits), pending=pending, where="trial", **extra
        )
    except ShoalError as exc:
        raise _field_error(exc, "trial") from None
    # Trials use what was resolved now, not whatever `@latest` means later.
    env = trial_resolved.get("environment") or {}
    if env.get("asset"):
        template["environment"] = f"azureml:{env['asset']}"
    code = trial_resolved.get("code") or {}
    if code.get("asset"):
        template["code"] = f"azureml:{code['asset']}"
    data.setdefault("display_name", name)
    resolved = {
        "compute": trial_resolved["compute"],
        "template": template,
        "seed": seed,
        "search_space": data.get("search_space"),
        "sampling_algorithm": algorithm.model_dump(exclude_none=True),
        "early_termination": policy.model_dump(exclude_none=True) if policy is not None else None,
        "objective": objective.model_dump(),
        "limits": limits.model_dump(exclude_none=True),
        "max_total_trials": limits.effective_max_total_trials,
        "max_concurrent_trials": limits.effective_max_concurrent_trials,
        "timeout": limits.effective_timeout,
        "artifacts": trial_resolved["artifacts"] | {"path": job_state.artifacts_prefix(name)},
        "inputs": {k: v for k, v in trial_resolved["inputs"].items() if k in pending},
    }
    if default_datastore:
        resolved["default_datastore"] = default_datastore
    return data, resolved


def fill_inputs(resolved: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A sweep step's template with its upstream outputs' locations, once they are known."""
    template = dict(resolved["template"])
    template_inputs = dict(template.get("inputs") or {})
    for name, entry in inputs.items():
        if entry.get("uri"):
            template_inputs[name] = {"type": entry.get("type") or "uri_folder", "path": entry["uri"]}
            if entry.get("mode"):
                template_inputs[name]["mode"] = entry["mode"]
        elif entry.get("control") and entry.get("value") is not None:  # an upstream step's control output
            template_inputs[name] = entry["value"]
    template["inputs"] = template_inputs
    return {**resolved, "template": template, "inputs": inputs}


def submit(ctx: ServiceContext, workspace: str, clean: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    name = clean.get("name") or generate_job_name()
    clean["name"] = name
    data, resolved = prepare(ctx, workspace, name, clean)
    return job_state.store_queued(ctx, workspace, name, SWEEP, data, resolved, base_url)


# -- the controller -------------------------------------------------------------------------


def advance(ctx: ServiceContext) -> None:
    with ctx.db.read() as session:
        # A sweep step of a pipeline waits NotStarted for its inputs.
        sweeps = job_rows.with_status(session, ACTIVE - {S.NOT_STARTED}, types=[SWEEP])
        ws_names = job_rows.workspace_names(session) if sweeps else {}
    for sweep in sweeps:
        try:
            _advance_one(ctx, ws_names[sweep.workspace_id], sweep.id)
        except Exception:  # noqa: BLE001 - one bad sweep must not stall the others
            logger.exception("sweep %s: controller step failed", sweep.name)


def _histories(session: Any, trials: list[JobRow], metric: str) -> dict[str, list[tuple[int, float]]]:
    names = {t.id: t.name for t in trials}
    points = tracking_rows.metric_histories(session, list(names), metric)
    return {t.name: points.get(t.id, []) for t in trials}


def _advance_one(ctx: ServiceContext, workspace: str, sweep_id: int) -> None:
    with ctx.db.read() as session:
        sweep = job_rows.by_id(session, sweep_id)
        if sweep is None or sweep.status in TERMINAL:
            return
        trials = job_rows.children(session, sweep.workspace_id, sweep.name)
        conf = sweep.resolved
        goal = conf["objective"]["goal"]
        metric = conf["objective"]["primary_metric"]
        values = _last_values(session, trials, metric)
        running = [t for t in trials if t.status in (S.RUNNING, S.FINALIZING)]
        # Every point is read only when a policy must judge running trials; ranking needs the
        # last value alone, which the latest-metric table keeps.
        histories = _histories(session, trials, metric) if conf.get("early_termination") and running else {}
    unfinished = [t for t in trials if t.status not in TERMINAL]
    # 1. cancel or timeout
    stopping = sweep.status == S.CANCEL_REQUESTED
    started = sweep.start_time or sweep.created_at
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=job_state.now().tzinfo)
    timed_out = started is not None and job_state.now() - started > timedelta(seconds=int(conf["timeout"]))
    if (stopping or timed_out) and unfinished:
        why = "the sweep was canceled" if stopping else f"the sweep's timeout ({conf['timeout']} s) was reached"
        _cancel_trials(ctx, [t.id for t in unfinished], why)
        return
    # 2. early termination
    policy = conf.get("early_termination")
    if policy and not stopping:
        for trial in unfinished:
            if trial.status in (S.RUNNING, S.FINALIZING) and histories.get(trial.name):
                stop, reason = early_termination.should_terminate(policy, goal, trial=trial.name, histories=histories)
                if stop:
                    _terminate(ctx, trial.id, reason)
    # 3. new trials
    created = len(trials)
    limit_total = int(conf["max_total_trials"])
    limit_running = int(conf["max_concurrent_trials"])
    exhausted = bool(conf.get("exhausted"))
    active = len(unfinished)
    new_trials = []
    if not (stopping or timed_out):
        history = [
            sweep_sampling.Trial(
                params=(t.resolved or {}).get("sweep_params") or {},
                value=values.get(t.name) if t.status == S.COMPLETED else None,
                running=t.status not in TERMINAL,
            )
            for t in trials
        ]
        while not exhausted and created < limit_total and active < limit_running:
            params = sweep_sampling.next_params(
                conf["search_space"],
                conf["sampling_algorithm"],
                sweep_seed=int(conf["seed"]),
                history=history,
                goal=goal,
                index=created,
            )
            if params is None:
                exhausted = True
                break
            new_trials.append((created, params))
            history.append(sweep_sampling.Trial(params=params, running=True))
            created += 1
            active += 1
    for index, params in new_trials:
        _create_trial(ctx, workspace, sweep_id, index, params)
    if exhausted and not conf.get("exhausted"):
        _update_resolved(ctx, sweep_id, {"exhausted": True})
    if new_trials and sweep.status == S.QUEUED:
        _move(ctx, sweep_id, S.RUNNING)
    # 4. the end
    if not new_trials and not unfinished and trials and (exhausted or created >= limit_total or stopping or timed_out):
        _finish(ctx, workspace, sweep_id, trials, values, goal, metric, stopping, timed_out)
    elif not trials and (stopping or timed_out):
        _move(ctx, sweep_id, S.CANCELED)


def _last_values(session: Any, trials: list[JobRow], metric: str) -> dict[str, float]:
    """Each trial's last value of the primary metric (MLflow's latest: highest step, then newest);
    trials that never logged it, or whose last value is NaN, are absent."""
    names = {t.id: t.name for t in trials}
    if not names:
        return {}
    out = {}
    for job_id, rows in tracking_rows.latest_metrics_of(session, list(names)).items():
        for row in rows:
            value = tracking_rows.metric_value(row)
            if row.key == metric and not math.isnan(value):
                out[names[job_id]] = value
    return out


def _create_trial(ctx: ServiceContext, workspace: str, sweep_id: int, index: int, params: dict[str, Any]) -> None:
    with ctx.db.read() as session:
        sweep = job_rows.by_id(session, sweep_id)
        if sweep is None:
            return
        conf = sweep.resolved
        name = f"{sweep.name}_{index}"
        experiment = sweep.experiment_name
        limits = SweepJobLimits.model_validate(conf.get("limits") or {})
        template = conf["template"]
    spec = _with_params(template, params, limits)
    spec["display_name"] = name
    spec["properties"] = {"shoal.sweep.index": str(index), "shoal.sweep.params": params}
    try:
        extra = {"default_datastore": conf["default_datastore"]} if conf.get("default_datastore") else {}
        data, resolved = prepare_command(ctx, workspace, name, spec, where=f"trial {index}", **extra)
    except ShoalError as exc:
        # The environment or compute went away since submission: the trial fails, saying why.
        data, resolved = spec, {"compute": conf["compute"], "artifacts": {}}
        error: dict[str, Any] | None = {"code": exc.code, "message": exc.message}
    else:
        error = None
    resolved["sweep_params"] = params
    with ctx.db.write() as session:
        sweep = job_rows.locked(session, sweep_id)
        if sweep is None or sweep.status in TERMINAL:
            return
        if job_rows.exists(session, sweep.workspace_id, name):
            return  # created before a restart
        row = job_state.new_row(
            session, sweep.workspace_id, name, "command", data, resolved, experiment, parent=sweep.name
        )
        session.flush()
        if error is not None:
            job_state.transition(row, S.FAILED, error=error)
        else:
            job_state.transition(row, S.QUEUED)
    ctx.notify_jobs()


def _terminate(ctx: ServiceContext, trial_id: int, reason: str) -> None:
    with ctx.db.write() as session:
        row = job_rows.locked(session, trial_id)
        if row is None or row.status in TERMINAL or row.status == S.CANCEL_REQUESTED:
            return
        row.spec = {
            **row.spec,
            "properties": {**(row.spec.get("properties") or {}), "shoal.sweep.early_termination": reason},
        }
        row.error = {"code": "EARLY_TERMINATED", "message": reason}
        job_state.transition(row, S.CANCEL_REQUESTED)
    ctx.notify_jobs()


def _cancel_trials(ctx: ServiceContext, ids: list[int], why: str) -> None:
    with ctx.db.write() as session:
        for trial_id in ids:
            row = job_rows.locked(session, trial_id)
            if row is None or row.status in TERMINAL or row.status == S.CANCEL_REQUESTED:
                continue
            row.error = row.error or {"code": "SWEEP_STOPPED", "message": why}
            if row.status in (S.NOT_STARTED, S.QUEUED):
                job_state.transition(row, S.CANCELED)
            else:
                job_state.transition(row, S.CANCEL_REQUESTED)
    ctx.notify_jobs()


def _update_resolved(ctx: ServiceContext, sweep_id: int, patch: dict[str, Any]) -> None:
    with ctx.db.write() as session:
        row = job_rows.locked(session, sweep_id)
        if row is not None:
            row.resolved = {**row.resolved, **patch}


def _move(ctx: ServiceContext, sweep_id: int, target: JobStatus, error: dict[str, Any] | None = None) -> None:
    with ctx.db.write() as session:
        row = job_rows.locked(session, sweep_id)
        if row is None or row.status in TERMINAL or row.status == target:
            return
        if target == S.CANCELED and row.status != S.CANCEL_REQUESTED:
            job_state.transition(row, S.CANCEL_REQUESTED)
        job_state.transition(row, target, error=error)


def _finish(
    ctx: ServiceContext,
    workspace: str,
    sweep_id: int,
    trials: list[JobRow],
    values: dict[str, float],
    goal: str,
    metric: str,
    stopping: bool,
    timed_out: bool,
) -> None:
    ranked: list[tuple[float, JobRow]] = []
    never_logged: list[str] = []
    for trial in trials:
        value = values.get(trial.name)
        early = trial.error and trial.error.get("code") == "EARLY_TERMINATED"
        if value is None:
            if trial.status == S.COMPLETED:
                never_logged.append(trial.name)
            continue
        if trial.status == S.COMPLETED or early:
            ranked.append((value, trial))
    best = None
    if ranked:
        best = (max if goal == "maximize" else min)(ranked, key=lambda pair: pair[0])
    with ctx.db.write() as session:
        row = job_rows.locked(session, sweep_id)
        if row is None or row.status in TERMINAL:
            return
        props = dict(row.spec.get("properties") or {})
        props["primary_metric"] = metric
        props["shoal.sweep.trials"] = str(len(trials))
        if never_logged:
            props["shoal.sweep.trials_without_metric"] = ", ".join(never_logged)
        resolved = dict(row.resolved)
        if best is not None:
            value, trial = best
            props["best_child_run_id"] = trial.name
            props["best_metric_value"] = str(value)
            props["score"] = str(value)
            resolved["outputs"] = trial.resolved.get("outputs") or {}
            resolved["best_trial_artifacts"] = trial.resolved.get("artifacts")
        row.spec = {**row.spec, "properties": props}
        row.resolved = resolved
        if stopping:
            target, error = S.CANCELED, None
        elif timed_out:
            target, error = S.CANCELED, {"code": "SWEEP_TIMEOUT", "message": "the sweep's timeout was reached"}
        elif best is None:
            target = S.FAILED
            reason = f"no trial logged the primary metric '{metric}'" if never_logged else "no trial completed"
            failed = next((t for t in trials if t.status == S.FAILED and t.error), None)
            if failed is not None and not never_logged:  # why, from the first trial that failed
                reason += f"; trial {failed.name} failed: {failed.error.get('message')}"
            error = {"code": "NO_TRIAL_SUCCEEDED", "message": reason}
        else:
            target, error = S.COMPLETED, None
        if target == S.CANCELED and row.status != S.CANCEL_REQUESTED:
            job_state.transition(row, S.CANCEL_REQUESTED)
        if row.status == S.QUEUED and target == S.COMPLETED:
            job_state.transition(row, S.RUNNING)
        job_state.transition(row, target, error=error)
