"""Components (``_schema/component/*.py``), discriminated by ``type`` (default ``command``).

Only command components are typed in detail; pipeline, parallel and spark components are
stored with loosely typed fields so they round-trip unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag

from shoal.entities import hooks
from shoal.entities.base import Asset
from shoal.entities.environment import Environment
from shoal.entities.ports import InputPorts, OutputPorts
from shoal.entities.validation import COMPONENT_NAME


def _env_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "reference"
    if isinstance(value, Mapping | Environment):
        return "inline"
    return None


EnvironmentRef = Annotated[
    Annotated[str, Tag("reference")] | Annotated[Environment, Tag("inline")],
    Discriminator(
        _env_kind,
        custom_error_type="environment",
        custom_error_message="must be a reference such as azureml:<name>:<version>, or an inline environment",
    ),
]
"""``azureml:<name>:<version>``, ``azureml:<name>@latest``, a registry URI, or an inline env."""


class Component(Asset):
    KIND: ClassVar[str] = "component"
    NAME_RULE: ClassVar[Any] = COMPONENT_NAME

    type: str
    display_name: str | None = None
    is_deterministic: bool = True
    inputs: InputPorts = Field(default_factory=dict)
    outputs: OutputPorts = Field(default_factory=dict)

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        """A pipeline step running this component with these inputs (a ``Node`` of the SDK's
        pipeline builder); inside a ``@dsl.pipeline`` function the step is added to the pipeline
        being built. The builder implements the call through :mod:`shoal.entities.hooks`."""
        return hooks.call(hooks.COMPONENT_CALL, self, args, inputs)

    @property
    def _func(self) -> Any:
        """azure-ai-ml's callable view of a loaded component (notebooks ``help()`` it): a
        function whose keyword arguments are the component's inputs and whose call is a step."""
        component = self

        def step(**inputs: Any) -> Any:
            return component(**inputs)

        params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in self.inputs]
        step.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        step.__name__ = step.__qualname__ = self.name or "component"
        step.__doc__ = self.description or self.display_name
        return step


class CommandComponent(Component):
    type: Literal["command"] = "command"
    command: str
    code: str | None = None
    environment: EnvironmentRef
    resources: dict[str, Any] | None = None
    distribution: dict[str, Any] | None = None
    additional_includes: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if isinstance(self.environment, Environment):
            out["environment"] = self.environment.to_dict()  # without the empty maps and server flags
        return out


class PipelineComponent(Component):
    """A reusable sub-graph; ``jobs`` are kept as plain dicts (the job layer parses them)."""

    type: Literal["pipeline"] = "pipeline"
    jobs: dict[str, Any]


class ParallelComponent(Component):
    type: Literal["parallel"] = "parallel"
    task: dict[str, Any]
    input_data: str | None = None
    mini_batch_size: str | int | None = None
    partition_keys: list[str] | None = None
    resources: dict[str, Any] | None = None
    retry_settings: dict[str, Any] | None = None
    max_concurrency_per_instance: int = 1
    error_threshold: int = -1
    mini_batch_error_threshold: int = -1
    logging_level: Literal["INFO", "WARNING", "DEBUG"] = "INFO"


class SparkComponent(Component):
    type: Literal["spark"] = "spark"
    code: str | None = None
    entry: dict[str, Any]
    py_files: list[str] | None = None
    jars: list[str] | None = None
    files: list[str] | None = None
    archives: list[str] | None = None
    args: str | None = None
    conf: dict[str, Any] | None = None
    environment: EnvironmentRef | None = None
    driver_cores: int | None = None
    driver_memory: str | None = None
    executor_cores: int | None = None
    executor_memory: str | None = None
    executor_instances: int | None = None
    dynamic_allocation_enabled: bool | None = None
    dynamic_allocation_min_executors: int | None = None
    dynamic_allocation_max_executors: int | None = None
    resources: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    additional_includes: list[str] | None = None


COMPONENT_TYPES: tuple[type[Component], ...] = (
    CommandComponent,
    PipelineComponent,
    ParallelComponent,
    SparkComponent,
)
