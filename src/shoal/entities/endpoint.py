"""Online endpoints and their deployments (``_schema/_deployment/online`` and
``_schema/_endpoint/online`` of azure-ai-ml), with Azure's field names and defaults.

An endpoint is the stable URL, its keys and the traffic split; a deployment is one model, code
and environment served by ``instance_count`` scoring processes behind it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.validation import EnvDict, FieldIssue, NameRule, StrDict

# Azure: 3-32 characters, a letter first, letters, digits and '-' (an endpoint name is a DNS label).
ENDPOINT_NAME = NameRule(
    "endpoint name", r"[a-zA-Z][a-zA-Z0-9-]{2,31}", "3-32 characters: a letter first, then letters, digits or '-'"
)
DEPLOYMENT_NAME = NameRule(
    "deployment name", r"[a-zA-Z][a-zA-Z0-9-]{2,31}", "3-32 characters: a letter first, then letters, digits or '-'"
)


def _entity_as_dict(value: Any) -> Any:
    """``model=Model(path=…)`` / ``environment=Environment(…)`` as azure-ai-ml takes them: kept as
    their YAML dict, since a deployment stores what it was given."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) and not isinstance(value, dict) else value


EntityOrRef = Annotated[str | dict[str, Any] | None, BeforeValidator(_entity_as_dict)]
PROVISIONING_STATES = ("Creating", "Updating", "Succeeded", "Failed", "Deleting", "Canceled")


def _percentages(value: dict[str, int], field: str) -> dict[str, int]:
    for name, pct in value.items():
        if not 0 <= int(pct) <= 100:
            raise FieldIssue(field, f"{field}[{name}] is {pct}: a percentage from 0 to 100")
    return value


# What the service sets on an endpoint, online or batch; a spec never gives them.
ENDPOINT_READ_ONLY_FIELDS = Entity.READ_ONLY_FIELDS + ("scoring_uri", "openapi_uri", "provisioning_state")


class ManagedOnlineEndpoint(Entity):
    KIND: ClassVar[str] = "online_endpoint"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = ENDPOINT_READ_ONLY_FIELDS

    auth_mode: Literal["key", "aml_token", "aad_token"] = "key"
    traffic: dict[str, int] = Field(default_factory=dict)
    mirror_traffic: dict[str, int] = Field(default_factory=dict)
    properties: StrDict = Field(default_factory=dict)
    identity: dict[str, Any] | None = None
    public_network_access: Literal["enabled", "disabled"] | None = None
    location: str | None = None
    kind: str | None = None
    scoring_uri: str | None = None
    openapi_uri: str | None = None
    provisioning_state: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else ENDPOINT_NAME.check(value)

    @model_validator(mode="after")
    def _check_traffic(self) -> Self:
        _percentages(self.traffic, "traffic")
        _percentages(self.mirror_traffic, "mirror_traffic")
        total = sum(self.traffic.values())
        if self.traffic and total not in (0, 100):
            raise FieldIssue("traffic", f"the traffic percentages add up to {total}; they must add up to 100 (or 0)")
        if sum(self.mirror_traffic.values()) > 50:
            raise FieldIssue("mirror_traffic", "at most 50 percent of the traffic may be mirrored")
        both = sorted(k for k, v in self.mirror_traffic.items() if v and self.traffic.get(k))
        if both:
            raise FieldIssue("mirror_traffic", f"deployment {both[0]!r} takes live traffic; it cannot also be mirrored")
        return self


class CodeConfiguration(ShoalModel):
    """The folder holding the scoring script, and the script's path inside it."""

    code: str
    scoring_script: str


class OnlineRequestSettings(ShoalModel):
    request_timeout_ms: int = Field(5000, ge=1, le=180000)
    max_concurrent_requests_per_instance: int = Field(1, ge=1)
    max_queue_wait_ms: int = Field(500, ge=0)


class ProbeSettings(ShoalModel):
    initial_delay: int = Field(10, ge=0)
    period: int = Field(10, ge=1)
    timeout: int = Field(2, ge=1)
    success_threshold: int = Field(1, ge=1)
    failure_threshold: int = Field(30, ge=1)


class ScaleSettings(ShoalModel):
    """Azure's ``scale_settings``: ``default`` (managed endpoints: a fixed ``instance_count``) or
    ``target_utilization`` (Kubernetes: autoscale between min and max instances). Recorded and
    shown; Shoal runs ``instance_count`` instances either way."""

    type: Literal["default", "target_utilization"] = "default"
    min_instances: int | None = Field(None, ge=1)
    max_instances: int | None = Field(None, ge=1)
    polling_interval: int | None = Field(None, ge=1)
    target_utilization_percentage: int | None = Field(None, ge=1, le=100)

    @model_validator(mode="after")
    def _fields_of_type(self) -> Self:
        extra = [
            f
            for f in ("min_instances", "max_instances", "polling_interval", "target_utilization_percentage")
            if getattr(self, f) is not None
        ]
        if self.type == "default" and extra:
            raise FieldIssue(
                "type",
                f"scale_settings of type default take no {extra[0]} (that is type: target_utilization)",
            )
        if self.min_instances and self.max_instances and self.min_instances > self.max_instances:
            raise FieldIssue("min_instances", "min_instances is above max_instances")
        return self


# azure-ai-ml's names for the two kinds.
DefaultScaleSettings = ScaleSettings


def TargetUtilizationScaleSettings(**fields: Any) -> ScaleSettings:  # noqa: N802 - azure-ai-ml's class name
    return ScaleSettings(type="target_utilization", **fields)


class ManagedOnlineDeployment(Entity):
    KIND: ClassVar[str] = "online_deployment"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + (
        "provisioning_state",
        "instances",
        "metrics",
    )

    type: Literal["managed", "kubernetes"] = "managed"
    endpoint_name: str | None = None
    model: EntityOrRef = None
    code_configuration: CodeConfiguration | None = None
    environment: EntityOrRef = None
    instance_type: str | None = None
    instance_count: int = Field(1, ge=1, le=64)
    request_settings: OnlineRequestSettings | None = None
    liveness_probe: ProbeSettings | None = None
    readiness_probe: ProbeSettings | None = None
    scale_settings: ScaleSettings = Field(default_factory=ScaleSettings)
    environment_variables: EnvDict = Field(default_factory=dict)
    app_insights_enabled: bool = False
    egress_public_network_access: Literal["enabled", "disabled"] | None = None
    data_collector: dict[str, Any] | None = None
    private_network_connection: bool | None = None
    properties: StrDict = Field(default_factory=dict)
    provisioning_state: str | None = None
    # Shoal's own read-only views: the running instances and the router's request metrics.
    instances: list[dict[str, Any]] | None = None
    metrics: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else DEPLOYMENT_NAME.check(value)

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value.get("path"):
            raise ValueError("an inline model needs a 'path' (or reference a registered one: azureml:<name>:<version>)")
        return value

    @model_validator(mode="after")
    def _code_needs_env(self) -> Self:
        if self.code_configuration is not None and self.environment is None:
            raise FieldIssue("environment", "a deployment with code_configuration needs an environment", missing=True)
        if self.model is None and self.code_configuration is None:
            raise FieldIssue("model", "a deployment needs a model, a code_configuration, or both", missing=True)
        return self


# SDK aliases: azure-ai-ml names the kind-neutral bases too.
OnlineEndpoint = ManagedOnlineEndpoint
OnlineDeployment = ManagedOnlineDeployment
