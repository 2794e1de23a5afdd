"""Compute targets (``_schema/compute/*.py``), discriminated by ``type``."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.common import IdentityConfiguration
from shoal.entities.validation import COMPUTE_NAME, FieldIssue

DEFAULT_VM_SIZE = "Standard_DS3_v2"
# An ISO 8601 duration of days, hours, minutes and seconds (Azure's ``PT30M``, ``P1DT2H``).
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_seconds(value: str | int | float) -> float:
    """Seconds in ``value``: an ISO 8601 duration (``PT30M``) or a number of minutes (``30``)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        minutes = float(value)
    else:
        text = value.strip().upper()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            minutes = float(text)
        else:
            found = _DURATION.match(text)
            if found is None or text in ("P", "PT") or text.endswith("T"):
                raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT30M, nor a number of minutes")
            parts = {k: float(v) for k, v in found.groupdict().items() if v}
            return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    if minutes < 0:
        raise ValueError(f"{value!r} is negative")
    return minutes * 60


class SshSettings(ShoalModel):
    admin_username: str | None = None
    admin_password: str | None = None  # a secret: split_secrets moves it out
    ssh_key_value: str | None = None
    ssh_port: int | None = None
    ssh_private_key_file: str | None = None


class NetworkSettings(ShoalModel):
    vnet_name: str | None = None
    subnet: str | None = None
    public_ip_address: str | None = None  # RO
    private_ip_address: str | None = None  # RO


class Compute(Entity):
    KIND: ClassVar[str] = "compute"
    PRINT_HIDDEN: ClassVar[tuple[str, ...]] = ("ssh_settings.admin_password",)
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + (
        "provisioning_state",
        "provisioning_errors",
        "created_on",
    )

    name: str
    type: str
    location: str | None = None
    resource_id: str | None = None
    provisioning_state: str | None = None
    provisioning_errors: list[Any] | None = None
    created_on: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return COMPUTE_NAME.check(value)


class AmlCompute(Compute):
    """A compute cluster: ``min_instances``..``max_instances`` nodes that scale with demand."""

    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Compute.READ_ONLY_FIELDS + ("properties",)

    type: Literal["amlcompute"] = "amlcompute"
    size: str = DEFAULT_VM_SIZE
    tier: Literal["dedicated", "low_priority"] = "dedicated"
    min_instances: int = Field(0, ge=0)
    max_instances: int = Field(4, ge=1)
    idle_time_before_scale_down: int = Field(120, ge=0)
    ssh_public_access_enabled: bool | None = None
    ssh_settings: SshSettings | None = None
    network_settings: NetworkSettings | None = None
    identity: IdentityConfiguration | None = None
    enable_node_public_ip: bool = True
    # Set by the server on read (``shoal.autoscaler``: whether the capacity hints reach one).
    properties: dict[str, str] | None = None

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_instances > self.max_instances:
            raise FieldIssue(
                "min_instances",
                f"min_instances ({self.min_instances}) is larger than max_instances ({self.max_instances})",
            )
        return self


class ComputeStartStopSchedule(ShoalModel):
    action: Literal["start", "stop"]
    state: Literal["enabled", "disabled"] | None = None
    # cron {expression, start_time, time_zone} or recurrence {frequency, interval, schedule}
    trigger: dict[str, Any] | None = None
    schedule_id: str | None = None  # RO
    provisioning_status: str | None = None  # RO


class ComputeSchedules(ShoalModel):
    compute_start_stop: list[ComputeStartStopSchedule] | None = None


class ComputeInstance(Compute):
    """A single development VM."""

    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Compute.READ_ONLY_FIELDS + (
        "state",
        "last_operation",
        "services",
        "os_image_metadata",
    )

    type: Literal["computeinstance"] = "computeinstance"
    size: str = DEFAULT_VM_SIZE
    create_on_behalf_of: dict[str, Any] | None = None
    ssh_public_access_enabled: bool | None = None
    ssh_settings: SshSettings | None = None
    network_settings: NetworkSettings | None = None
    identity: IdentityConfiguration | None = None
    # Stop the instance (its JupyterLab) after this long without activity: an ISO 8601 duration
    # (PT30M) or minutes; ``idle_time_before_shutdown_minutes`` is the SDK's other spelling.
    idle_time_before_shutdown: str | None = None
    idle_time_before_shutdown_minutes: int | None = Field(None, ge=0)
    schedules: ComputeSchedules | None = None
    setup_scripts: dict[str, Any] | None = None
    custom_applications: list[dict[str, Any]] | None = None
    enable_node_public_ip: bool = True
    enable_sso: bool = True
    enable_root_access: bool = True
    release_quota_on_stop: bool = False
    enable_os_patching: bool = False
    state: str | None = None
    last_operation: dict[str, Any] | None = None
    services: list[dict[str, Any]] | None = None
    os_image_metadata: dict[str, Any] | None = None

    @field_validator("idle_time_before_shutdown", mode="before")
    @classmethod
    def _check_idle_time(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            duration_seconds(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return str(value)

    def idle_seconds(self) -> float | None:
        """How long the instance may stay idle before it is stopped (None: never stopped for it)."""
        if self.idle_time_before_shutdown:
            return duration_seconds(self.idle_time_before_shutdown)
        if self.idle_time_before_shutdown_minutes:
            return self.idle_time_before_shutdown_minutes * 60.0
        return None


class KubernetesCompute(Compute):
    type: Literal["kubernetes"] = "kubernetes"
    namespace: str = "default"
    properties: dict[str, Any] | None = None
    identity: IdentityConfiguration | None = None


class VirtualMachineCompute(Compute):
    """An attached VM reached over SSH."""

    type: Literal["virtualmachine"] = "virtualmachine"
    resource_id: str
    ssh_settings: SshSettings | None = None


class SynapseSparkCompute(Compute):
    type: Literal["synapsespark"] = "synapsespark"
    resource_id: str
    identity: IdentityConfiguration | None = None


class LocalCompute(Compute):
    """Runs jobs on the Shoal server machine itself."""

    type: Literal["local"] = "local"


COMPUTE_TYPES: tuple[type[Compute], ...] = (
    AmlCompute,
    ComputeInstance,
    KubernetesCompute,
    VirtualMachineCompute,
    SynapseSparkCompute,
    LocalCompute,
)
