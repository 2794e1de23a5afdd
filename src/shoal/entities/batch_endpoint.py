"""Batch endpoints and their deployments (``_schema/_endpoint/batch``, ``_schema/_deployment/batch``
of azure-ai-ml): an endpoint names a default deployment; invoking it runs a job. A model
deployment scores the input's files in mini batches with the user's ``init()``/``run(mini_batch)``;
a pipeline-component deployment runs its component as a pipeline job."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.endpoint import (
    DEPLOYMENT_NAME,
    ENDPOINT_NAME,
    ENDPOINT_READ_ONLY_FIELDS,
    CodeConfiguration,
    EntityOrRef,
)
from shoal.entities.validation import EnvDict, FieldIssue, StrDict


class BatchEndpointDefaults(ShoalModel):
    deployment_name: str | None = None


class BatchEndpoint(Entity):
    KIND: ClassVar[str] = "batch_endpoint"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = ENDPOINT_READ_ONLY_FIELDS

    auth_mode: Literal["aad_token", "key", "aml_token"] = "aad_token"
    defaults: BatchEndpointDefaults | None = None
    properties: StrDict = Field(default_factory=dict)
    location: str | None = None
    scoring_uri: str | None = None
    openapi_uri: str | None = None
    provisioning_state: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else ENDPOINT_NAME.check(value)


class BatchRetrySettings(ShoalModel):
    max_retries: int = Field(3, ge=0)
    timeout: int = Field(30, ge=1)


class BatchDeploymentSettings(ShoalModel):
    """``settings`` of a model deployment (and, flattened, the older top-level fields)."""

    mini_batch_size: int = Field(10, ge=1)
    output_action: Literal["append_row", "summary_only"] = "append_row"
    output_file_name: str = "predictions.csv"
    max_concurrency_per_instance: int = Field(1, ge=1)
    retry_settings: BatchRetrySettings | None = None
    error_threshold: int = Field(-1, ge=-1)
    logging_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    environment_variables: EnvDict = Field(default_factory=dict)


_FLAT = ("mini_batch_size", "output_action", "output_file_name", "max_concurrency_per_instance", "retry_settings",
         "error_threshold", "logging_level")  # fmt: skip


class _BatchDeployment(Entity):
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + ("provisioning_state",)

    endpoint_name: str | None = None
    properties: StrDict = Field(default_factory=dict)
    provisioning_state: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else DEPLOYMENT_NAME.check(value)


class ModelBatchDeployment(_BatchDeployment):
    KIND: ClassVar[str] = "batch_deployment"

    type: Literal["model"] = "model"
    model: EntityOrRef = None
    code_configuration: CodeConfiguration | None = None
    environment: EntityOrRef = None
    compute: str | None = None
    resources: dict[str, Any] | None = None
    settings: BatchDeploymentSettings = Field(default_factory=BatchDeploymentSettings)
    environment_variables: EnvDict = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_settings(cls, data: Any) -> Any:
        # The older BatchDeployment schema has the settings at the top level: move them in.
        if isinstance(data, dict) and any(k in data for k in _FLAT):
            data = dict(data)
            settings = dict(data.get("settings") or {})
            for key in _FLAT:
                if key in data:
                    settings.setdefault(key, data.pop(key))
            data["settings"] = settings
        return data

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.model is None:
            raise FieldIssue("model", "a model batch deployment needs a model", missing=True)
        if self.code_configuration is None:
            raise FieldIssue(
                "code_configuration",
                "Shoal runs model batch deployments with a scoring script (code_configuration); "
                "no-code MLflow batch deployments are not supported yet",
                missing=True,
            )
        if self.environment is None:
            raise FieldIssue("environment", "a deployment with code_configuration needs an environment", missing=True)
        return self


class PipelineComponentBatchDeployment(_BatchDeployment):
    KIND: ClassVar[str] = "batch_deployment"

    type: Literal["pipeline"] = "pipeline"
    component: str | dict[str, Any]
    settings: dict[str, Any] = Field(default_factory=dict)
    job_definition: dict[str, Any] | None = None


BATCH_DEPLOYMENT_TYPES = (ModelBatchDeployment, PipelineComponentBatchDeployment)
BatchDeployment = ModelBatchDeployment
