"""``MLClient``: the entry point of the SDK, shaped like azure-ai-ml's."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from shoal.client.access import AccessOperations
from shoal.client.local_server import ensure_server
from shoal.client.transport import Transport
from shoal.config import ShoalSettings, load_settings
from shoal.entities.base import Entity
from shoal.entities.kind_names import KIND_NAMES, VERSIONED_KINDS
from shoal.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from shoal.client.batch_endpoints import BatchDeploymentOperations, BatchEndpointOperations
    from shoal.client.connections import WorkspaceConnectionsOperations
    from shoal.client.endpoints import OnlineDeploymentOperations, OnlineEndpointOperations
    from shoal.client.jobs import JobOperations
    from shoal.client.operations import (
        CodeOperations,
        ComponentOperations,
        ComputeOperations,
        DataOperations,
        DatastoreOperations,
        EnvironmentOperations,
        ModelOperations,
        WorkspaceOperations,
    )
    from shoal.client.schedules import ScheduleOperations

# Kind → where the class of its operation group lives; MLClient makes each group the first time
# its ``sdk_group`` attribute is read (``models``, ``data``, ``jobs``…), so a script or CLI call
# that only lists models never imports the job machinery (issue #15: start-up time).
GROUP_CLASSES: dict[str, str] = {
    "workspace": "shoal.client.operations:WorkspaceOperations",
    "compute": "shoal.client.operations:ComputeOperations",
    "datastore": "shoal.client.operations:DatastoreOperations",
    "model": "shoal.client.operations:ModelOperations",
    "data": "shoal.client.operations:DataOperations",
    "environment": "shoal.client.operations:EnvironmentOperations",
    "component": "shoal.client.operations:ComponentOperations",
    "code": "shoal.client.operations:CodeOperations",
    "job": "shoal.client.jobs:JobOperations",  # the job group uploads code through the code group
    "schedule": "shoal.client.schedules:ScheduleOperations",
    "connection": "shoal.client.connections:WorkspaceConnectionsOperations",
    "online_endpoint": "shoal.client.endpoints:OnlineEndpointOperations",
    "online_deployment": "shoal.client.endpoints:OnlineDeploymentOperations",
    "batch_endpoint": "shoal.client.batch_endpoints:BatchEndpointOperations",
    "batch_deployment": "shoal.client.batch_endpoints:BatchDeploymentOperations",
}
if set(GROUP_CLASSES) != {kind for kind, names in KIND_NAMES.items() if names.sdk_group}:  # pragma: no cover
    raise RuntimeError("MLClient's operation groups and the kind table's sdk_group disagree")
_KIND_OF_GROUP = {str(KIND_NAMES[kind].sdk_group): kind for kind in GROUP_CLASSES}

ASSET_GROUPS: dict[str, str] = {kind: str(KIND_NAMES[kind].sdk_group) for kind in VERSIONED_KINDS}


def group_class(kind: str) -> type:
    """The operation-group class of ``kind`` (imported on first use)."""
    module, _, name = GROUP_CLASSES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


# Kinds created through a long-running ``begin_…`` call, not ``create_or_update``.
_BEGIN_KINDS = (
    "workspace",
    "compute",
    "schedule",
    "online_endpoint",
    "online_deployment",
    "batch_endpoint",
    "batch_deployment",
)


class MLClient:
    """Talks to a Shoal server: the configured one, or the local one (started when needed).

    Example:
        >>> ml_client = MLClient()                       # local server, workspace "default"
        >>> ml_client = MLClient(base_url="http://127.0.0.1:8080", token="…", workspace_name="team")
        >>> ml_client.models.get("credit-model", label="latest")
    """

    # One attribute per kind with an ``sdk_group`` in the kind table, made on first use (``__getattr__``).
    workspaces: WorkspaceOperations
    compute: ComputeOperations
    datastores: DatastoreOperations
    models: ModelOperations
    data: DataOperations
    environments: EnvironmentOperations
    components: ComponentOperations
    _code: CodeOperations
    jobs: JobOperations
    schedules: ScheduleOperations
    connections: WorkspaceConnectionsOperations
    online_endpoints: OnlineEndpointOperations
    online_deployments: OnlineDeploymentOperations
    batch_endpoints: BatchEndpointOperations
    batch_deployments: BatchDeploymentOperations

    def __init__(
        self,
        credential: Any = None,
        subscription_id: str | None = None,
        resource_group_name: str | None = None,
        workspace_name: str | None = None,
        registry_name: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        settings: ShoalSettings | None = None,
        http_client: httpx.Client | None = None,
        **_: Any,
    ) -> None:
        # credential, subscription_id, resource_group_name and registry_name are accepted so
        # azure-ai-ml code runs unchanged; a Shoal server has no subscriptions or registries.
        del registry_name
        self.subscription_id = subscription_id
        self.resource_group_name = resource_group_name
        settings = settings or load_settings()
        if base_url is None and http_client is None:
            base_url, found_token = ensure_server(settings)
            token = token or found_token
        elif token is None:
            token = settings.token
        self._transport = Transport(base_url or "http://shoal", token, http_client=http_client)
        # Users, tokens, roles and audit (Shoal's own; Azure keeps them outside the workspace).
        self.access = AccessOperations(self._transport)
        self.workspace_name = workspace_name or settings.workspace

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes not set yet: the operation groups, made once each.
        kind = _KIND_OF_GROUP.get(attribute)
        if kind is None or "_transport" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")
        extra = (self._code,) if kind == "job" else ()
        group = group_class(kind)(self._transport, self.workspace_name, *extra)
        setattr(self, attribute, group)
        return group

    @classmethod
    def from_config(
        cls,
        credential: Any = None,
        *,
        path: str | os.PathLike[str] | None = None,
        file_name: str = "config.json",
        **kwargs: Any,
    ) -> MLClient:
        """Find ``config.json`` (or ``.azureml/config.json``) from ``path`` or the working folder upward."""
        found = _find_config(Path(path) if path else Path.cwd(), file_name)
        config = json.loads(found.read_text())
        workspace = config.get("workspace_name")
        scope = config.get("Scope") or config.get("scope")
        if not workspace and isinstance(scope, str) and "/workspaces/" in scope:
            workspace = scope.rstrip("/").rsplit("/workspaces/", 1)[1].split("/")[0]
        if not workspace:
            raise UserError(f"{found} names no workspace_name")
        return cls(
            credential,
            config.get("subscription_id"),
            config.get("resource_group"),
            workspace,
            base_url=kwargs.pop("base_url", config.get("shoal_url")),
            **kwargs,
        )

    def create_or_update(self, entity: Entity, **kwargs: Any) -> Any:
        group = self._group_for(entity)
        return group.create_or_update(entity, **kwargs)

    def begin_create_or_update(self, entity: Entity, **kwargs: Any) -> Any:
        kind = _kind_of(entity)
        if kind == "workspace":
            return self.workspaces.begin_create(entity)
        if kind == "compute":
            return self.compute.begin_create_or_update(entity)
        if kind == "schedule":
            return self.schedules.begin_create_or_update(entity)
        if kind in ("online_endpoint", "online_deployment", "batch_endpoint", "batch_deployment"):
            return getattr(self, str(KIND_NAMES[kind].sdk_group)).begin_create_or_update(entity)
        from shoal.client.operations import Poller

        return Poller(self.create_or_update(entity, **kwargs))

    def _group_for(self, entity: Entity) -> Any:
        kind = _kind_of(entity)
        group = KIND_NAMES[kind].sdk_group if kind in GROUP_CLASSES and kind not in _BEGIN_KINDS else None
        if group is None:
            raise UserError(f"create_or_update does not take a {kind}; use begin_create_or_update")
        return getattr(self, group)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> MLClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _kind_of(entity: Entity) -> str:
    kind = getattr(type(entity), "KIND", "")
    if not kind:
        raise UserError(f"not a Shoal entity: {type(entity).__name__}")
    return str(kind)


def _find_config(start: Path, file_name: str) -> Path:
    for folder in [start.resolve(), *start.resolve().parents]:
        for candidate in (folder / file_name, folder / ".azureml" / file_name):
            if candidate.is_file():
                return candidate
    raise NotFoundError(f"no {file_name} found in {start} or any folder above it")
