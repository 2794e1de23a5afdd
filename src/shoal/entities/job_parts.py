"""Parts of jobs that the SDK builds as objects: the identity a job runs as
(``UserIdentityConfiguration``, …), a pipeline's ``settings`` (``PipelineJobSettings``), and the
sweep setters (``set_limits``, ``set_objective``, ``set_resources``) shared by sweep jobs and
sweep steps. Each serializes to the plain YAML mapping Azure ML's CLI writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, field_validator

from shoal.entities.base import ShoalModel


class JobIdentity(ShoalModel):
    """Whose identity a job uses for data: the submitter's, the compute's MSI, or an AML token.

    Shoal records it; a job always reaches the workspace with its own job token."""

    type: Literal["user_identity", "managed", "managed_identity", "aml_token"]
    client_id: str | None = None
    object_id: str | None = None
    msi_resource_id: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class JobService(ShoalModel):
    """``azure.ai.ml.entities.JobService``: an interactive service a job asks for (``services:``
    in YAML): ``jupyter_lab``, ``ssh``, ``tensor_board`` or ``vs_code``.

    Shoal records it on the job; it starts no service inside a job (the job's page, the ``Studio``
    entry, is the one service the server fills in)."""

    type: Literal["jupyter_lab", "ssh", "tensor_board", "vs_code", "custom", "studio", "tracking"] | None = None
    port: int | None = None
    nodes: str | None = None
    properties: dict[str, str] | None = None
    endpoint: str | None = None  # read-only in Azure
    status: str | None = None  # read-only in Azure

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class UserIdentityConfiguration(JobIdentity):
    """``azure.ai.ml.entities.UserIdentityConfiguration``: ``identity: {type: user_identity}``."""

    type: Literal["user_identity"] = "user_identity"


class AmlTokenConfiguration(JobIdentity):
    """``azure.ai.ml.entities.AmlTokenConfiguration``: ``identity: {type: aml_token}``."""

    type: Literal["aml_token"] = "aml_token"


class ManagedIdentityConfiguration(JobIdentity):
    """``azure.ai.ml.entities.ManagedIdentityConfiguration``: ``identity: {type: managed, …}``;
    azure-ai-ml's ``resource_id`` is the YAML's ``msi_resource_id``."""

    type: Literal["managed", "managed_identity"] = "managed"

    def __init__(
        self,
        *,
        client_id: str | None = None,
        resource_id: str | None = None,
        object_id: str | None = None,
        principal_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        del principal_id  # read-only in Azure (the identity's principal); nothing to send
        if resource_id is not None:
            kwargs.setdefault("msi_resource_id", resource_id)
        super().__init__(client_id=client_id, object_id=object_id, **kwargs)

    @property
    def resource_id(self) -> str | None:
        return self.msi_resource_id


# Each identity object serializes as a JobIdentity (no field of its own), so a job's YAML is the
# same whichever class made it.
IDENTITY_CLASSES = (UserIdentityConfiguration, AmlTokenConfiguration, ManagedIdentityConfiguration)


class PipelineJobSettings(ShoalModel):
    """A pipeline job's ``settings:``; unknown keys are kept (the server warns about them), so
    the YAML round-trips unchanged. Compares equal to the mapping it serializes to."""

    model_config = ConfigDict(extra="allow")

    default_datastore: str | None = None
    default_compute: str | None = None
    continue_on_step_failure: bool | None = None
    force_rerun: bool | None = None
    default_environment: str | None = None
    on_init: str | None = None
    on_finalize: str | None = None

    def __init__(
        self,
        default_datastore: str | None = None,
        default_compute: str | None = None,
        continue_on_step_failure: bool | None = None,
        force_rerun: bool | None = None,
        default_environment: str | None = None,
        on_init: str | None = None,
        on_finalize: str | None = None,
        **kwargs: Any,
    ) -> None:
        given = {
            "default_datastore": default_datastore,
            "default_compute": default_compute,
            "continue_on_step_failure": continue_on_step_failure,
            "force_rerun": force_rerun,
            "default_environment": default_environment,
            "on_init": on_init,
            "on_finalize": on_finalize,
        }
        super().__init__(**{k: v for k, v in given.items() if v is not None}, **kwargs)

    # YAML and server bodies validate without this __init__, so their errors keep field paths.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        if isinstance(other, PipelineJobSettings):
            return self.to_dict() == other.to_dict()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self.to_dict())

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style read, for code that treated ``settings`` as a dict."""
        return self.to_dict().get(key, default)


class PortDict(dict[str, Any]):
    """A pipeline job's ``inputs``/``outputs``: a dict whose entries are also attributes, as in
    azure-ai-ml (``pipeline_job.outputs.model = Output(type="uri_folder", mode="upload")``)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(f"no port {name!r}; the ports are: {', '.join(self) or 'none'}") from None
        if type(value) is dict:  # ``pipeline_job.outputs.out.type = "uri_file"`` changes the entry
            value = self[name] = PortEntry(value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


class PortEntry(dict[str, Any]):
    """One port of a pipeline job (``{type, path, mode}``) whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def plain(value: Any) -> Any:
    """An SDK object (a policy, a sampling algorithm, limits) as its YAML mapping."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def merged(current: Any, **values: Any) -> dict[str, Any]:
    """``current`` (a mapping or None) with the given non-None ``values`` set."""
    out = dict(plain(current) or {})
    out.update({k: v for k, v in values.items() if v is not None})
    return out


class SweepSetters:
    """``set_limits``, ``set_objective`` and ``set_resources`` as azure-ai-ml's ``SweepJob`` and
    sweep steps have them; each merges into the ``limits``, ``objective`` or ``resources`` mapping."""

    def set_limits(
        self,
        *,
        max_concurrent_trials: int | None = None,
        max_total_trials: int | None = None,
        timeout: int | None = None,
        trial_timeout: int | None = None,
    ) -> None:
        self.limits = merged(
            getattr(self, "limits", None),
            max_concurrent_trials=max_concurrent_trials,
            max_total_trials=max_total_trials,
            timeout=timeout,
            trial_timeout=trial_timeout,
        )

    def set_objective(self, *, goal: str | None = None, primary_metric: str | None = None) -> None:
        self.objective = merged(getattr(self, "objective", None), goal=goal, primary_metric=primary_metric)

    def set_resources(
        self,
        *,
        instance_type: str | list[str] | None = None,
        instance_count: int | None = None,
        locations: list[str] | None = None,
        properties: dict[str, Any] | None = None,
        docker_args: str | None = None,
        shm_size: str | None = None,
    ) -> None:
        self.resources = merged(
            getattr(self, "resources", None),
            instance_type=instance_type,
            instance_count=instance_count,
            locations=locations,
            properties=properties,
            docker_args=docker_args,
            shm_size=shm_size,
        )
