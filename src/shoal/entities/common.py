"""Small value objects shared by several entity kinds."""

from __future__ import annotations

from typing import Literal

from shoal.entities.base import ShoalModel


class UserAssignedIdentity(ShoalModel):
    resource_id: str | None = None
    client_id: str | None = None
    principal_id: str | None = None


class IdentityConfiguration(ShoalModel):
    """Managed identity of a resource (compute, workspace)."""

    type: Literal["system_assigned", "user_assigned", "system_assigned,user_assigned", "none"]
    user_assigned_identities: list[UserAssignedIdentity] | None = None
    # read-only, reported by the server
    principal_id: str | None = None
    tenant_id: str | None = None
