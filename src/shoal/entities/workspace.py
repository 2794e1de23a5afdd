"""Workspace (``_schema/workspace/workspace.py``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.common import IdentityConfiguration
from shoal.entities.validation import WORKSPACE_NAME


class CustomerManagedKey(ShoalModel):
    key_vault: str | None = None
    key_uri: str | None = None
    cosmosdb_id: str | None = None
    storage_id: str | None = None
    search_id: str | None = None


class ManagedNetwork(ShoalModel):
    isolation_mode: Literal["disabled", "allow_internet_outbound", "allow_only_approved_outbound"] = "disabled"
    # Rules differ per type (fqdn's destination is a string); Shoal only stores them.
    outbound_rules: list[dict[str, Any]] | None = None
    firewall_sku: str | None = None
    network_id: str | None = None
    status: dict[str, Any] | None = None


class ServerlessComputeSettings(ShoalModel):
    custom_subnet: str | None = None
    no_public_ip: bool | None = None


class Workspace(Entity):
    KIND: ClassVar[str] = "workspace"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + ("mlflow_tracking_uri",)

    name: str
    location: str | None = None
    display_name: str | None = None
    resource_group: str | None = None
    discovery_url: str | None = None
    storage_account: str | None = None
    container_registry: str | None = None
    key_vault: str | None = None
    application_insights: str | None = None
    hbi_workspace: bool = False
    enable_data_isolation: bool = False
    image_build_compute: str | None = None
    public_network_access: Literal["Enabled", "Disabled"] | None = None
    primary_user_assigned_identity: str | None = None
    system_datastores_auth_mode: str | None = None
    provision_network_now: bool | None = None
    allow_roleassignment_on_rg: bool | None = None
    kind: Literal["default", "hub", "project", "featurestore"] = "default"
    identity: IdentityConfiguration | None = None
    customer_managed_key: CustomerManagedKey | None = None
    managed_network: ManagedNetwork | None = None
    network_acls: dict[str, Any] | None = None
    serverless_compute: ServerlessComputeSettings | None = None
    workspace_hub: str | None = None
    mlflow_tracking_uri: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return WORKSPACE_NAME.check(value)

    @field_validator("public_network_access", mode="before")
    @classmethod
    def _capitalize(cls, value: Any) -> Any:
        # The CLI documents "Enabled"/"Disabled" but accepts any case.
        return value.capitalize() if isinstance(value, str) else value
