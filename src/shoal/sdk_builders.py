"""SDK builder functions in the style of ``azure.ai.ml``: ``command(...)``.

Local paths given to a builder (``code``, data inputs) are made absolute against the caller's
working directory, as YAML paths are made absolute against the YAML file's folder.

In a ``@dsl.pipeline`` function, ``command(...)`` is a pipeline step (its inputs may be the
pipeline's inputs or other steps' outputs); a ``command(...)`` made outside one can be called
there, ``train(data=prep.outputs.clean)``, to make a step of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from shoal import dsl
from shoal.entities.io import Input
from shoal.entities.job import CommandJob, SweepJob
from shoal.entities.job_parts import plain
from shoal.entities.refs import absolute_local_path, is_local_path
from shoal.entities.sweep.search_space import SweepDistribution
from shoal.errors import UserError

if TYPE_CHECKING:
    from shoal.dsl.nodes import Node


def _local_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, Mapping):
            value = Input(**value)
        if isinstance(value, Input) and not value.is_literal and value.path and is_local_path(value.path):
            value = value.model_copy(update={"path": absolute_local_path(value.path)})
        out[name] = value
    return out


class Command(CommandJob):
    """What :func:`command` returns: a command job that a pipeline function can call as a step.

    ``train(data=x)`` is a step with these inputs inside a ``@dsl.pipeline`` function, and a new
    command job with these inputs outside one. It equals the plain CommandJob of the same fields."""

    _search_space: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        if args:
            raise dsl.PipelineArgumentError("a command takes its inputs by name, e.g. job(lr=0.1)")
        if dsl.in_pipeline():
            return dsl.command_step(self, inputs)
        if any(dsl.is_binding(v) for v in inputs.values()):
            raise dsl.PipelineArgumentError("step outputs and pipeline inputs are inputs only inside a @dsl.pipeline")
        # Inputs given a distribution (``lr=Uniform(0.01, 0.1)``) are the search space of a sweep.
        space = {k: v for k, v in inputs.items() if isinstance(v, SweepDistribution)}
        given = {k: v for k, v in inputs.items() if k not in space}
        body = self.model_dump(by_alias=True, exclude_none=True)
        # The inputs keep their plain values (the command still declares them); sweep() swaps them.
        made = _as_command(CommandJob(**{**body, "inputs": {**self.inputs, **_local_inputs(given)}}))
        made._search_space = {**self._search_space, **space}
        return made

    def sweep(
        self,
        *,
        primary_metric: str,
        goal: str,
        sampling_algorithm: Any = "random",
        compute: str | None = None,
        max_concurrent_trials: int | None = None,
        max_total_trials: int | None = None,
        timeout: int | None = None,
        trial_timeout: int | None = None,
        early_termination_policy: Any = None,
        search_space: dict[str, Any] | None = None,
        identity: Any = None,
        queue_settings: Any = None,
        job_tier: str | None = None,
        priority: str | None = None,
    ) -> Any:
        """A sweep job over this command, as azure-ai-ml's ``Command.sweep`` builds one.

        The search space is the inputs this command was called with as distributions
        (``job(lr=Uniform(0.01, 0.1)).sweep(...)``), plus ``search_space``; the trial reads them
        as ``${{inputs.<name>}}``. Submit it with ``ml_client.jobs.create_or_update``."""
        space = {**self._search_space, **(search_space or {})}
        if not space:
            raise UserError(
                "a sweep needs a search space: call the command with distributions, e.g. job(lr=Uniform(0.01, 0.1))"
            )

        body = self.to_dict()
        trial = {
            k: body[k]
            for k in ("command", "code", "environment", "environment_variables", "distribution", "resources")
            if body.get(k) not in (None, {}, [])
        }
        limits = {
            "max_total_trials": max_total_trials,
            "max_concurrent_trials": max_concurrent_trials,
            "timeout": timeout,
            "trial_timeout": trial_timeout,
        }
        queue = plain(queue_settings) or (
            {"job_tier": job_tier, "priority": priority} if job_tier or priority else None
        )
        data = {
            "type": "sweep",
            "trial": trial,
            "search_space": {k: plain(v) for k, v in space.items()},
            "sampling_algorithm": plain(sampling_algorithm),
            "objective": {"goal": goal, "primary_metric": primary_metric},
            "limits": {k: v for k, v in limits.items() if v is not None},
            "early_termination": plain(early_termination_policy),
            "inputs": {k: v for k, v in (body.get("inputs") or {}).items() if k not in space},
            "outputs": body.get("outputs") or {},
            "compute": compute or body.get("compute"),
            "identity": plain(identity) or body.get("identity"),
            "queue_settings": queue,
        }
        for key in ("name", "display_name", "description", "tags", "properties", "experiment_name"):
            if body.get(key):
                data[key] = body[key]
        return SweepJob(**{k: v for k, v in data.items() if v not in (None, {})} | {"inputs": data["inputs"]})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommandJob):
            return self.__dict__ == other.__dict__
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _as_command(job: CommandJob) -> Command:
    """The validated job as a :class:`Command` (errors name CommandJob, as before)."""
    return Command.model_construct(_fields_set=set(job.model_fields_set), **dict(job))


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def command(
    name: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    display_name: str | None = None,
    command: str | None = None,
    experiment_name: str | None = None,
    environment: Any = None,
    environment_variables: dict[str, str] | None = None,
    distribution: Any = None,
    compute: str | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    instance_count: int | None = None,
    instance_type: str | None = None,
    locations: list[str] | None = None,
    docker_args: str | list[str] | None = None,
    shm_size: str | None = None,
    timeout: int | None = None,
    code: str | os.PathLike[str] | None = None,
    identity: Any = None,
    is_deterministic: bool = True,
    services: dict[str, Any] | None = None,
    job_tier: str | None = None,
    priority: str | None = None,
    parent_job_name: str | None = None,
) -> Command | Node:
    """A command job, as ``azure.ai.ml.command`` builds one; submit it with ``ml_client.jobs.create_or_update``.

    ``inputs`` take literals and :class:`~shoal.entities.io.Input` objects, ``outputs`` take
    :class:`~shoal.entities.io.Output` objects or None; ``distribution`` a dict such as
    ``{"type": "pytorch", "process_count_per_instance": 4}`` or a distribution object.
    ``is_deterministic`` only matters for pipeline steps and is accepted for compatibility.
    Errors are SpecErrors naming the field.

    Inside a ``@dsl.pipeline`` function the result is a pipeline step (``shoal.dsl.Node``), and
    ``inputs`` may hold the pipeline's inputs and other steps' outputs.
    """
    bindings = {k: v for k, v in (inputs or {}).items() if dsl.is_binding(v)}
    if bindings and not dsl.in_pipeline():
        raise dsl.PipelineArgumentError("step outputs and pipeline inputs are inputs only inside a @dsl.pipeline")
    if bindings and inputs:
        inputs = {**inputs, **{k: dsl.placeholder(v) for k, v in bindings.items()}}
    del is_deterministic  # step reuse is a pipeline matter; a standalone job always runs
    if isinstance(code, os.PathLike):
        code = os.fspath(code)
    if isinstance(code, str) and is_local_path(code):
        code = absolute_local_path(code)
    resources = _drop_none(
        {
            "instance_count": instance_count,
            "instance_type": instance_type,
            "locations": locations,
            "docker_args": docker_args,
            "shm_size": shm_size,
        }
    )
    queue_settings = _drop_none({"job_tier": job_tier, "priority": priority})
    data = _drop_none(
        {
            "name": name,
            "description": description,
            "tags": tags,
            "properties": properties,
            "display_name": display_name,
            "command": command,
            "experiment_name": experiment_name,
            "environment": environment,
            "environment_variables": environment_variables,
            "distribution": distribution,
            "compute": compute,
            "inputs": _local_inputs(inputs) if inputs else None,
            "outputs": dict(outputs) if outputs else None,
            "resources": resources or None,
            "limits": {"timeout": timeout} if timeout is not None else None,
            "code": code,
            "identity": identity,
            "services": services,
            "queue_settings": queue_settings or None,
            "parent_job_name": parent_job_name,
        }
    )
    job = _as_command(CommandJob(**data))
    return dsl.command_step(job, bindings) if dsl.in_pipeline() else job
