"""``spark(...)``, as ``azure.ai.ml.spark`` builds it: a :class:`SparkJob` outside a pipeline
function, a spark step inside one. Either runs locally as ``spark-submit --master local[N]``
(``shoal.entities.spark``)."""

from __future__ import annotations

import os
from typing import Any

from shoal import dsl
from shoal.entities.component import SparkComponent
from shoal.entities.io import Input
from shoal.entities.job import SparkJob
from shoal.entities.job_parts import plain
from shoal.entities.refs import absolute_local_path, is_local_path
from shoal.sdk_builders import _local_inputs


def _declared(value: Any) -> dict[str, Any]:
    """The port a step input declares: an Input's type and mode, else a data folder."""
    if isinstance(value, Input):
        return {k: v for k, v in (("type", value.type), ("mode", value.mode)) if v is not None}
    return {"type": getattr(value, "type", None) or "uri_folder"}


def spark(
    *,
    experiment_name: str | None = None,
    name: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    code: str | os.PathLike[str] | None = None,
    entry: dict[str, Any] | None = None,
    py_files: list[str] | None = None,
    jars: list[str] | None = None,
    files: list[str] | None = None,
    archives: list[str] | None = None,
    identity: Any = None,
    driver_cores: int | None = None,
    driver_memory: str | None = None,
    executor_cores: int | None = None,
    executor_memory: str | None = None,
    executor_instances: int | None = None,
    dynamic_allocation_enabled: bool | None = None,
    dynamic_allocation_min_executors: int | None = None,
    dynamic_allocation_max_executors: int | None = None,
    conf: dict[str, Any] | None = None,
    environment: Any = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    args: str | None = None,
    compute: str | None = None,
    resources: Any = None,
    **_: Any,
) -> Any:
    """A spark job (or, inside ``@dsl.pipeline``, a spark step); submit it with ``ml_client.jobs.create_or_update``."""
    if isinstance(code, os.PathLike):
        code = os.fspath(code)
    if isinstance(code, str) and is_local_path(code):
        code = absolute_local_path(code)
    fields = {
        "display_name": display_name,
        "description": description,
        "tags": tags,
        "code": code,
        "entry": dict(entry or {}),
        "py_files": py_files,
        "jars": jars,
        "files": files,
        "archives": archives,
        "driver_cores": driver_cores,
        "driver_memory": driver_memory,
        "executor_cores": executor_cores,
        "executor_memory": executor_memory,
        "executor_instances": executor_instances,
        "dynamic_allocation_enabled": dynamic_allocation_enabled,
        "dynamic_allocation_min_executors": dynamic_allocation_min_executors,
        "dynamic_allocation_max_executors": dynamic_allocation_max_executors,
        "conf": conf,
        "environment": environment,
        "args": args,
        "resources": dict(resources) if resources else None,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    inputs = dict(inputs or {})
    if dsl.in_pipeline():
        component = SparkComponent(
            name=(name or "spark").lower(),
            inputs={k: _declared(v) for k, v in inputs.items()},
            outputs={k: {"type": "uri_folder", **(plain(v) or {})} for k, v in (outputs or {}).items()},
            **fields,
        )
        values = {k: v for k, v in inputs.items() if dsl.is_binding(v) or not isinstance(v, Input) or v.path}
        step = component(**values)
        if compute:
            step.compute = compute
        return step
    return SparkJob(
        name=name,
        experiment_name=experiment_name,
        identity=identity,
        compute=compute,
        inputs=_local_inputs(inputs),
        outputs=dict(outputs or {}),
        **fields,
    )
