"""``ml_client.connections``: workspace connections, with azure-ai-ml's
``WorkspaceConnectionsOperations`` methods. Secrets come back only with ``populate_secrets``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shoal.client.operations import _as_dict, _entity, _Group


class WorkspaceConnectionsOperations(_Group):
    @property
    def _base(self) -> str:
        return f"{self._wsp}/connections"

    def create_or_update(self, workspace_connection: Any, *, populate_secrets: bool = False, **_: Any) -> Any:
        body = _as_dict("connection", workspace_connection)
        created = _entity("connection", self._t.request("PUT", f"{self._base}/{body['name']}", json=body))
        return self.get(created.name, populate_secrets=True) if populate_secrets else created

    def get(self, name: str, *, populate_secrets: bool = False, **_: Any) -> Any:
        params = {"include_secrets": "true"} if populate_secrets else None
        return _entity("connection", self._t.request("GET", f"{self._base}/{name}", params=params))

    def list(
        self, connection_type: str | None = None, *, include_data_connections: bool = False, **_: Any
    ) -> Iterator[Any]:
        params = {"type": connection_type} if connection_type else None
        return (_entity("connection", c) for c in self._t.paged(self._base, params))

    def delete(self, name: str, **_: Any) -> None:
        self._t.request("DELETE", f"{self._base}/{name}")
