"""Jobs (``_schema/job/*.py``), discriminated by ``type`` (default ``command``).

Command jobs are typed in detail (azureml-v2-surface.md §2.9.1). Pipeline and sweep jobs are
stored with loosely typed fields so that they load and round-trip now; their checks come later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.component import EnvironmentRef
from shoal.entities.environment import Environment
from shoal.entities.expressions import command_problem
from shoal.entities.io import JobInputs, JobOutputs, Output, output_or_default
from shoal.entities.job_parts import JobIdentity, PipelineJobSettings, PortDict, SweepSetters, plain
from shoal.entities.names import JOB_NAME
from shoal.entities.validation import EnvDict, FieldIssue, scalar_to_str

IO_NAME = re.compile(r"[A-Za-z0-9_]+")
SHM_SIZE = re.compile(r"\d+[bkmg]?", re.IGNORECASE)


# --- identity, queue settings, resources, limits ---------------------------------------------


class QueueSettings(ShoalModel):
    job_tier: Literal["spot", "basic", "standard", "premium"] | None = None
    priority: Literal["low", "medium", "high"] | None = None

    @field_validator("job_tier", "priority", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            return None if value.lower() == "null" else value.lower()
        return value


class JobResources(ShoalModel):
    """``resources:`` (``job_resource_configuration.py``); ``shm_size`` is docker's ``<n>[b|k|m|g]``."""

    instance_count: int = Field(1, ge=1)
    instance_type: str | None = None
    shm_size: str | None = None
    docker_args: str | list[str] | None = None
    locations: list[str] | None = None
    max_instance_count: int | None = Field(None, ge=1)
    properties: dict[str, Any] | None = None

    @field_validator("shm_size", mode="before")
    @classmethod
    def _shm_size(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not SHM_SIZE.fullmatch(value):
            raise ValueError(f"{value!r} is not a size; use <number>[b|k|m|g], e.g. 2g")
        return value

    @model_validator(mode="after")
    def _max_count(self) -> Self:
        if self.max_instance_count is not None and self.max_instance_count < self.instance_count:
            raise FieldIssue(
                "max_instance_count",
                f"max_instance_count ({self.max_instance_count}) is smaller than "
                f"instance_count ({self.instance_count})",
            )
        return self


class CommandJobLimits(ShoalModel):
    timeout: int | None = Field(None, gt=0, description="seconds")


# --- distribution ----------------------------------------------------------------------------


class PyTorchDistribution(ShoalModel):
    """``instance_count × process_count_per_instance`` processes with the torch env vars set."""

    type: Literal["pytorch"] = "pytorch"
    process_count_per_instance: int = Field(1, ge=1)


class MpiDistribution(ShoalModel):
    type: Literal["mpi"] = "mpi"
    process_count_per_instance: int | None = Field(None, ge=1)


class TensorFlowDistribution(ShoalModel):
    """``worker_count`` defaults to the instance count; ``TF_CONFIG`` is set per worker."""

    type: Literal["tensorflow"] = "tensorflow"
    worker_count: int | None = Field(None, ge=1)
    parameter_server_count: int = Field(0, ge=0)


class RayDistribution(ShoalModel):
    """Experimental in Azure ML; kept loosely (unknown keys are kept)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["ray"] = "ray"
    port: int | None = None
    address: str | None = None
    include_dashboard: bool | None = None
    dashboard_port: int | None = None
    head_node_additional_args: str | None = None
    worker_node_additional_args: str | None = None


DISTRIBUTION_TYPES: dict[str, type[ShoalModel]] = {
    "pytorch": PyTorchDistribution,
    "mpi": MpiDistribution,
    "tensorflow": TensorFlowDistribution,
    "ray": RayDistribution,
}


def _distribution(value: Any) -> Any:
    """Accept ``{type: PyTorch}``, the SDK's ``{"distribution_type": "pytorch", ...}`` and instances."""
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    if "type" not in data and "distribution_type" in data:
        data["type"] = data.pop("distribution_type")
    type_name = data.get("type")
    if isinstance(type_name, str):
        data["type"] = type_name = type_name.lower()
    if type_name not in DISTRIBUTION_TYPES:
        allowed = ", ".join(DISTRIBUTION_TYPES)
        if type_name is None:
            raise FieldIssue("type", f"a distribution needs a type; one of: {allowed}", missing=True)
        raise FieldIssue("type", f"unknown distribution type {type_name!r}; allowed types: {allowed}")
    return data


def _distribution_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in DISTRIBUTION_TYPES else None


Distribution = Annotated[
    Annotated[PyTorchDistribution, Tag("pytorch")]
    | Annotated[MpiDistribution, Tag("mpi")]
    | Annotated[TensorFlowDistribution, Tag("tensorflow")]
    | Annotated[RayDistribution, Tag("ray")],
    Discriminator(_distribution_kind),
    BeforeValidator(_distribution),
]


# --- jobs ------------------------------------------------------------------------------------


class Job(Entity):
    """Fields of every job (``base_job.py``)."""

    KIND: ClassVar[str] = "job"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + (
        "status",
        "start_time",
        "end_time",
        "error",
        "exit_code",
        "log_files",
        "archived",
        "params",
        "metrics",
    )

    type: str
    display_name: str | None = None
    experiment_name: str | None = None
    # str -> str as in Azure ML; the server adds structured read-only entries (a step's `reuse`).
    properties: dict[str, Any] = Field(default_factory=dict)
    compute: str | None = None
    identity: JobIdentity | None = None
    services: dict[str, Any] | None = None  # JobService objects become their YAML mappings
    # read-only, reported by the server
    status: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    log_files: dict[str, Any] | None = None
    archived: bool = False
    # read-only: what the job logged through MLflow (its params, the last value of each metric)
    params: dict[str, str] | None = None
    metrics: dict[str, float | str] | None = None

    @field_validator("services", mode="before")
    @classmethod
    def _service_objects(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) if isinstance(v, ShoalModel) else v for k, v in value.items()}
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else JOB_NAME.check(value)

    @property
    def studio_url(self) -> str | None:
        """The job's page on the server (``services.Studio.endpoint``), the URL ``shoal job
        create`` prints as its Web View; None until the server has accepted the job."""
        studio = (self.services or {}).get("Studio")
        endpoint = studio.get("endpoint") if isinstance(studio, Mapping) else getattr(studio, "endpoint", None)
        return str(endpoint) if endpoint else None

    @field_validator("properties", mode="before")
    @classmethod
    def _properties(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return {str(k): v if isinstance(v, Mapping | list) else scalar_to_str(v) for k, v in value.items()}
        return value


def _check_io_names(names: Mapping[str, Any], what: str) -> None:
    for name in names:
        if not IO_NAME.fullmatch(name):
            raise FieldIssue(
                f"{what}.{name}", f"{what[:-1]} name {name!r} is invalid: use only letters, digits and '_'"
            )


class CommandJob(Job):
    """``type: command``: one command in an environment, with inputs, outputs and resources."""

    type: Literal["command"] = "command"
    command: str
    code: str | None = None
    environment: EnvironmentRef
    environment_variables: EnvDict = Field(default_factory=dict)
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    resources: JobResources | None = None
    distribution: Distribution | None = None
    limits: CommandJobLimits | None = None
    queue_settings: QueueSettings | None = None
    parent_job_name: str | None = None

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the command is empty")
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        _check_io_names(self.inputs, "inputs")
        _check_io_names(self.outputs, "outputs")
        unset = [name for name, value in self.inputs.items() if value is None]
        texts = {
            "command": self.command,
            **{f"environment_variables.{k}": v for k, v in self.environment_variables.items()},
        }
        for where, text in texts.items():
            problem = command_problem(text, self.inputs, self.outputs, optional_inputs=unset)
            if problem:
                raise FieldIssue(where, problem)
        return self

    @property
    def effective_outputs(self) -> dict[str, Output]:
        """``outputs`` with every null output made a default ``uri_folder`` output."""
        return {name: output_or_default(value) for name, value in self.outputs.items()}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if isinstance(self.environment, Environment):
            out["environment"] = self.environment.to_dict()  # without the empty maps and server flags
        return out


class PipelineJob(Job):
    """``type: pipeline``; ``jobs`` steps are kept as plain dicts for now."""

    type: Literal["pipeline"] = "pipeline"
    jobs: dict[str, Any] = Field(default_factory=dict)
    component: str | dict[str, Any] | None = None
    # An object, as in azure-ai-ml (``job.settings.default_compute = "cpu"``); it serializes to
    # the same ``settings:`` mapping, and an empty one is left out.
    settings: PipelineJobSettings = Field(default_factory=PipelineJobSettings)
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs", "outputs", "jobs", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("inputs", "outputs", mode="after")
    @classmethod
    def _attribute_access(cls, value: dict[str, Any]) -> PortDict:
        return PortDict(value)

    @field_validator("settings", mode="before")
    @classmethod
    def _settings(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, PipelineJobSettings):
            return value.to_dict()  # a copy: two jobs never share one settings object
        return value

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        settings = self.settings.to_dict() if isinstance(self.settings, PipelineJobSettings) else plain(self.settings)
        if settings:
            out["settings"] = settings
        else:
            out.pop("settings", None)
        return out

    @model_validator(mode="after")
    def _jobs_or_component(self) -> Self:
        if not self.jobs and self.component is None:
            raise FieldIssue("jobs", "a pipeline job needs 'jobs' (or a pipeline 'component')", missing=True)
        if self.jobs and self.component is not None:
            raise FieldIssue("component", "give either 'jobs' or 'component', not both")
        return self


class SweepJob(SweepSetters, Job):
    """``type: sweep``; trial, search space and policies are kept as plain mappings.

    azure-ai-ml's setters work: ``set_limits``, ``set_objective``, ``set_resources``, and assigning
    a policy, sampling algorithm, objective or limits object (``job.early_termination =
    BanditPolicy(...)``) stores its mapping."""

    PLAIN_FIELDS: ClassVar[tuple[str, ...]] = (
        "early_termination",
        "sampling_algorithm",
        "objective",
        "limits",
        "search_space",
        "trial",
        "resources",
    )

    type: Literal["sweep"] = "sweep"
    trial: dict[str, Any]
    search_space: dict[str, Any]
    sampling_algorithm: str | dict[str, Any]
    objective: dict[str, Any]
    early_termination: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    resources: dict[str, Any] | None = None
    queue_settings: QueueSettings | None = None

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator(*PLAIN_FIELDS, mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return plain(value)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, plain(value) if name in self.PLAIN_FIELDS else value)


class MlflowRunJob(Job):
    """``type: mlflow_run``: a run created through the MLflow API from outside any job.

    The server creates these (``runs/create``); nothing runs them, and they cannot be submitted."""

    type: Literal["mlflow_run"] = "mlflow_run"
    parent_job_name: str | None = None


class SparkJob(Job):
    """``type: spark``: a PySpark script (or a jar's class) run by ``spark-submit --master
    local[N]`` on this server (``shoal.entities.spark``), stored as the command job that runs it."""

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
    environment_variables: EnvDict = Field(default_factory=dict)
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    resources: dict[str, Any] | None = None
    driver_cores: int | None = None
    driver_memory: str | None = None
    executor_cores: int | None = None
    executor_memory: str | None = None
    executor_instances: int | None = None
    dynamic_allocation_enabled: bool | None = None
    dynamic_allocation_min_executors: int | None = None
    dynamic_allocation_max_executors: int | None = None

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        _check_io_names(self.inputs, "inputs")
        _check_io_names(self.outputs, "outputs")
        if not (self.entry.get("file") or self.entry.get("class_name")):
            raise FieldIssue("entry", "a spark job needs entry.file (a script relative to code) or entry.class_name")
        if self.args:
            problem = command_problem(self.args, self.inputs, self.outputs, optional_inputs=[])
            if problem:
                raise FieldIssue("args", problem)
        return self


JOB_TYPES: tuple[type[Job], ...] = (CommandJob, PipelineJob, SweepJob, MlflowRunJob, SparkJob)
