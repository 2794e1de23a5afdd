"""``MLClient.access``: users, API tokens, role assignments and the audit log of a Shoal server
(no azure-ai-ml counterpart: Azure keeps these in Entra ID, RBAC and the Activity Log)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from shoal.client.transport import Transport


class AccessOperations:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def whoami(self) -> dict[str, Any]:
        return self._t.request("GET", "/me")  # type: ignore[no-any-return]

    def studio_login(self) -> dict[str, Any]:
        """A one-time studio login link (``url``, ``expires_at``) bound to this client's token."""
        return self._t.request("POST", "/studio/login-codes")  # type: ignore[no-any-return]

    # -- users ------------------------------------------------------------------------------

    def list_users(self) -> list[dict[str, Any]]:
        return list(self._t.paged("/users"))

    def create_user(self, name: str, *, display_name: str | None = None, admin: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "admin": admin}
        if display_name is not None:
            body["display_name"] = display_name
        return self._t.request("POST", "/users", json=body)  # type: ignore[no-any-return]

    def get_user(self, name: str) -> dict[str, Any]:
        return self._t.request("GET", f"/users/{name}")  # type: ignore[no-any-return]

    def delete_user(self, name: str) -> None:
        self._t.request("DELETE", f"/users/{name}")

    # -- tokens -----------------------------------------------------------------------------

    def create_token(self, user: str, *, name: str = "", expires_in_days: int | None = None) -> dict[str, Any]:
        body = {"name": name, "expires_in_days": expires_in_days}
        return self._t.request("POST", f"/users/{user}/tokens", json=body)  # type: ignore[no-any-return]

    def list_tokens(self, user: str) -> list[dict[str, Any]]:
        return list(self._t.paged(f"/users/{user}/tokens"))

    def revoke_token(self, user: str, token_id: str) -> dict[str, Any]:
        return self._t.request("DELETE", f"/users/{user}/tokens/{token_id}")  # type: ignore[no-any-return]

    # -- roles ------------------------------------------------------------------------------

    def list_roles(self) -> list[dict[str, Any]]:
        """The built-in roles, then the custom ones."""
        return list(self._t.paged("/roles"))

    def get_role(self, name: str) -> dict[str, Any]:
        return self._t.request("GET", f"/roles/{quote(name, safe='')}")  # type: ignore[no-any-return]

    def create_or_update_role(
        self,
        name: str,
        *,
        actions: list[str],
        not_actions: list[str] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Define a custom role (server admin): Azure-style action patterns such as
        ``Microsoft.MachineLearningServices/workspaces/jobs/*``."""
        body = {"actions": actions, "not_actions": not_actions or [], "description": description}
        return self._t.request("PUT", f"/roles/{quote(name, safe='')}", json=body)  # type: ignore[no-any-return]

    def delete_role(self, name: str) -> None:
        self._t.request("DELETE", f"/roles/{quote(name, safe='')}")

    def list_role_assignments(self, workspace: str) -> list[dict[str, Any]]:
        return list(self._t.paged(f"/workspaces/{workspace}/role-assignments"))

    def assign_role(self, workspace: str, user: str, role: str) -> dict[str, Any]:
        path = f"/workspaces/{workspace}/role-assignments/{user}"
        return self._t.request("PUT", path, json={"role": role})  # type: ignore[no-any-return]

    def remove_role(self, workspace: str, user: str, role: str | None = None) -> None:
        self._t.request("DELETE", f"/workspaces/{workspace}/role-assignments/{user}", params={"role": role})

    # -- audit ------------------------------------------------------------------------------

    def list_audit(self, *, limit: int | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        """Records newest first; filters: user, workspace, since, until (ISO 8601), outcome. With
        ``workspace``, that workspace's records (which its Owners may read, not only admins)."""
        workspace = filters.pop("workspace", None)
        if workspace:
            return self._t.paged(f"/workspaces/{workspace}/audit", filters, limit=limit)
        return self._t.paged("/audit", filters, limit=limit)
