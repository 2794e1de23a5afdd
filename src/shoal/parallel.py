"""``from shoal.parallel import parallel_run_function, RunFunction`` (``azure.ai.ml.parallel``
after the import swap): a parallel component defined in Python, called as a pipeline step.

Its job runs the task's ``entry_script`` as Azure's ParallelRunStep does: ``init()`` once, then
``run(mini_batch)`` for each mini batch of the ``input_data`` input (a list of file paths, or a
pandas DataFrame of an MLTable's rows), the rows returned appended to ``append_row_to``; the
``program_arguments`` are the script's ``sys.argv``. See ``entities/pipeline_graph/parallel.py``
for what runs and what is only accepted (the mini batches run in one process)."""

from __future__ import annotations

import os
from typing import Any

from shoal.entities.component import ParallelComponent
from shoal.entities.environment import Environment
from shoal.entities.io import Input, Output
from shoal.entities.refs import absolute_local_path, is_local_path
from shoal.errors import UserError

__all__ = ["RunFunction", "parallel_run_function"]


class RunFunction:
    """A parallel task that runs a Python entry script (``init()``, ``run(mini_batch)``)."""

    def __init__(
        self,
        *,
        code: str | os.PathLike[str] | None = None,
        entry_script: str | None = None,
        program_arguments: str | None = None,
        model: str | None = None,
        append_row_to: str | None = None,
        environment: Any = None,
        **kwargs: Any,
    ) -> None:
        del kwargs  # azure-ai-ml's other keywords describe Azure's own runtime
        self.type = "run_function"
        self.code = os.fspath(code) if code is not None else None
        self.entry_script = entry_script
        self.program_arguments = program_arguments
        self.model = model
        self.append_row_to = append_row_to
        self.environment = environment

    def to_dict(self) -> dict[str, Any]:
        code = self.code
        if code is not None and is_local_path(code):
            code = absolute_local_path(code)  # read from the folder the notebook ran in
        env = self.environment.to_dict() if isinstance(self.environment, Environment) else self.environment
        out = {
            "type": self.type,
            "code": code,
            "entry_script": self.entry_script,
            "program_arguments": self.program_arguments,
            "model": self.model,
            "append_row_to": self.append_row_to,
            "environment": env,
        }
        return {k: v for k, v in out.items() if v is not None}


def _ports(ports: dict[str, Any] | None, kind: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, port in (ports or {}).items():
        if isinstance(port, dict):
            port = kind(**port)
        if not isinstance(port, kind):
            raise UserError(f"parallel_run_function: {name!r} must be an {kind.__name__}(...)")
        out[name] = port.model_dump(mode="json", exclude_none=True)
    return out


def parallel_run_function(
    *,
    name: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    display_name: str | None = None,
    experiment_name: str | None = None,
    compute: str | None = None,
    retry_settings: Any = None,
    environment_variables: dict[str, str] | None = None,
    logging_level: str | None = None,
    max_concurrency_per_instance: int | None = None,
    error_threshold: int | None = None,
    mini_batch_error_threshold: int | None = None,
    task: RunFunction | None = None,
    mini_batch_size: str | int | None = None,
    partition_keys: list[str] | None = None,
    input_data: str | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    instance_count: int | None = None,
    instance_type: str | None = None,
    docker_args: str | None = None,
    shm_size: str | None = None,
    identity: Any = None,
    is_deterministic: bool = True,
    **kwargs: Any,
) -> ParallelComponent:
    """A parallel component (call it in a ``@dsl.pipeline`` function to add the step)."""
    del experiment_name, compute, docker_args, shm_size, identity, kwargs  # the step's, or Azure's
    if task is None:
        raise UserError("parallel_run_function needs a task: RunFunction(code=..., entry_script=...)")
    body = task.to_dict() if isinstance(task, RunFunction) else dict(task)
    if environment_variables:
        body["environment_variables"] = dict(environment_variables)
    retry = retry_settings.model_dump() if hasattr(retry_settings, "model_dump") else retry_settings
    resources = {"instance_count": instance_count, "instance_type": instance_type}
    fields = {
        "name": name or (os.path.splitext(os.path.basename(task.entry_script or "parallel"))[0] if task else None),
        "description": description,
        "tags": tags,
        "properties": properties,
        "display_name": display_name,
        "task": body,
        "inputs": _ports(inputs, Input),
        "outputs": _ports(outputs, Output),
        "input_data": input_data,
        "mini_batch_size": str(mini_batch_size) if mini_batch_size is not None else None,
        "partition_keys": partition_keys,
        "retry_settings": retry,
        "max_concurrency_per_instance": max_concurrency_per_instance,
        "error_threshold": error_threshold,
        "mini_batch_error_threshold": mini_batch_error_threshold,
        "logging_level": logging_level.upper() if logging_level else None,
        "resources": {k: v for k, v in resources.items() if v is not None} or None,
        "is_deterministic": is_deterministic,
    }
    return ParallelComponent(**{k: v for k, v in fields.items() if v is not None})
