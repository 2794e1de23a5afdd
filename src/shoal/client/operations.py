"""Operation groups of MLClient, named as in azure-ai-ml (``ml_client.models.get`` …)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shoal.client.transport import Transport
from shoal.entities.base import Entity
from shoal.entities.kind_names import KIND_NAMES
from shoal.entities.kinds import parse_entity
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.errors import NotFoundError, SpecError, UnsupportedError, UserError

LIST_VIEW_TYPES = ("ActiveOnly", "ArchivedOnly", "All")


class Poller:
    """What ``begin_*`` returns: the work is already done when Shoal answers."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self, timeout: float | None = None) -> Any:
        return self._value

    def done(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> None:
        return None

    def status(self) -> str:
        return "Succeeded"


def _entity(kind: str, body: dict[str, Any]) -> Any:
    return parse_entity(kind, body, source="server response")


def _as_dict(kind: str, obj: Entity | dict[str, Any]) -> dict[str, Any]:
    if isinstance(obj, Entity):
        return obj.to_dict()
    if isinstance(obj, dict):
        return parse_entity(kind, obj).to_dict()
    raise UserError(f"expected a {kind} entity, got {type(obj).__name__}")


def _list_view(value: Any) -> str:
    text = getattr(value, "value", value) or "ActiveOnly"
    if text not in LIST_VIEW_TYPES:
        raise UserError(f"list_view_type must be one of {', '.join(LIST_VIEW_TYPES)}, got {text!r}")
    return str(text)


class _Group:
    def __init__(self, transport: Transport, workspace: str) -> None:
        self._t = transport
        self._ws = workspace

    @property
    def _wsp(self) -> str:
        return f"/workspaces/{self._ws}"


# -- workspaces -----------------------------------------------------------------------------


class WorkspaceOperations(_Group):
    def begin_create(self, workspace: Any, update_dependent_resources: bool = False, **_: Any) -> Poller:
        body = _as_dict("workspace", workspace)
        return Poller(_entity("workspace", self._t.request("PUT", f"/workspaces/{body['name']}", json=body)))

    create_or_update = begin_create

    def get(self, name: str | None = None) -> Any:
        return _entity("workspace", self._t.request("GET", f"/workspaces/{name or self._ws}"))

    def list(self, *, scope: str = "resource_group", **_: Any) -> Iterator[Any]:
        """Every workspace of the server (``scope`` selects nothing: there are no subscriptions)."""
        return (_entity("workspace", w) for w in self._t.paged("/workspaces"))

    def begin_update(self, workspace: Any, *, update_dependent_resources: bool = False, **_: Any) -> Poller:
        body = _as_dict("workspace", workspace)
        name = body.pop("name")
        current = self._t.request("GET", f"/workspaces/{name}")
        patch = {k: v for k, v in body.items() if current.get(k) != v and k not in ("id", "creation_context")}
        return Poller(_entity("workspace", self._t.request("PATCH", f"/workspaces/{name}", json=patch)))

    def update(self, name: str, patch: dict[str, Any]) -> Any:
        return _entity("workspace", self._t.request("PATCH", f"/workspaces/{name}", json=patch))

    def begin_delete(
        self, name: str, *, delete_dependent_resources: bool = False, permanently_delete: bool = False, **_: Any
    ) -> Poller:
        """Delete the workspace (Shoal's workspaces have no dependent Azure resources to keep or delete)."""
        self._t.request("DELETE", f"/workspaces/{name}")
        return Poller(None)


# -- compute --------------------------------------------------------------------------------

INSTANCE_ACTION_TIMEOUT = 300.0


class ComputeOperations(_Group):
    def begin_create_or_update(self, compute: Any) -> Poller:
        body = _as_dict("compute", compute)
        return Poller(_entity("compute", self._t.request("PUT", f"{self._wsp}/computes/{body['name']}", json=body)))

    def get(self, name: str) -> Any:
        return _entity("compute", self._t.request("GET", f"{self._wsp}/computes/{name}"))

    def list(self, *, compute_type: str | None = None, max_results: int | None = None) -> Iterator[Any]:
        items = self._t.paged(
            f"{self._wsp}/computes", {"type": compute_type and compute_type.lower()}, limit=max_results
        )
        return (_entity("compute", c) for c in items)

    def update(self, name: str, patch: dict[str, Any]) -> Any:
        return _entity("compute", self._t.request("PATCH", f"{self._wsp}/computes/{name}", json=patch))

    def begin_update(self, compute: Any) -> Poller:
        body = _as_dict("compute", compute)
        keys = (
            "min_instances",
            "max_instances",
            "idle_time_before_scale_down",
            "idle_time_before_shutdown",
            "idle_time_before_shutdown_minutes",
            "description",
            "tags",
            "identity",
        )
        return Poller(self.update(body["name"], {k: body[k] for k in keys if k in body}))

    def begin_delete(self, name: str, *, action: str = "Delete") -> Poller:
        self._t.request("DELETE", f"{self._wsp}/computes/{name}")
        return Poller(None)

    def _action(self, name: str, action: str) -> Poller:
        # A start waits until the instance's JupyterLab answers (the server gives it
        # SHOAL_DEVBOX_START_TIMEOUT, 120 s by default): wait longer than the usual minute.
        body = self._t.request("POST", f"{self._wsp}/computes/{name}/{action}", timeout=INSTANCE_ACTION_TIMEOUT)
        return Poller(_entity("compute", body))

    def list_nodes(self, name: str) -> list[dict[str, Any]]:
        """One entry per node: its state and the job it runs."""
        return list(self._t.paged(f"{self._wsp}/computes/{name}/nodes"))

    def begin_start(self, name: str) -> Poller:
        """Start a compute instance: its dev box (JupyterLab) runs once this returns; ``services``
        lists its URLs."""
        return self._action(name, "start")

    def begin_stop(self, name: str) -> Poller:
        return self._action(name, "stop")

    def begin_restart(self, name: str) -> Poller:
        return self._action(name, "restart")


# -- datastores -----------------------------------------------------------------------------


class DatastoreOperations(_Group):
    def create_or_update(self, datastore: Any) -> Any:
        body = _as_dict("datastore", datastore)
        return _entity("datastore", self._t.request("PUT", f"{self._wsp}/datastores/{body['name']}", json=body))

    def get(self, name: str, *, include_secrets: bool = False) -> Any:
        params = {"include_secrets": "true"} if include_secrets else None
        return _entity("datastore", self._t.request("GET", f"{self._wsp}/datastores/{name}", params=params))

    def get_default(self, *, include_secrets: bool = False) -> Any:
        params = {"include_secrets": "true"} if include_secrets else None
        return _entity("datastore", self._t.request("GET", f"{self._wsp}/default-datastore", params=params))

    def list(self, *, include_secrets: bool = False) -> Iterator[Any]:
        params = {"include_secrets": "true"} if include_secrets else None
        return (_entity("datastore", d) for d in self._t.paged(f"{self._wsp}/datastores", params))

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"{self._wsp}/datastores/{name}")


# -- versioned assets -----------------------------------------------------------------------


class AssetOperations(_Group):
    kind = ""

    @property
    def _base(self) -> str:
        return f"{self._wsp}/{KIND_NAMES[self.kind].plural}"

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """Upload local paths the asset names and replace them with datastore URIs."""
        return body

    def _upload(self, local: str, datastore: str | None, **kwargs: Any) -> str:
        # Transfers (and rich's progress bars) are imported when used: a read command starts faster.
        from shoal.client.uploads import upload_path

        return upload_path(
            self._t, self._ws, strip_file_prefix(local), datastore=datastore or "workspaceblobstore", **kwargs
        )

    def create_or_update(self, asset: Any, **_: Any) -> Any:
        return self._create_or_update(asset)

    def _create_or_update(self, asset: Any) -> Any:
        if isinstance(asset, Entity) and asset.id and asset.version:
            return self._update_fetched(asset)
        body = _as_dict(self.kind, asset)
        name = body.get("name")
        if not name:
            raise SpecError(f"a {self.kind} needs a name")
        body = self._prepare(body)
        version = body.get("version")
        if version is None:
            created = self._t.request("POST", f"{self._base}/{name}/versions", json=body)
        else:
            created = self._t.request("PUT", f"{self._base}/{name}/versions/{version}", json=body)
        return _entity(self.kind, created)

    def _update_fetched(self, asset: Entity) -> Any:
        """An object from ``get`` that was changed and sent back: only metadata may change."""
        current = self._t.request("GET", f"{self._base}/{asset.name}/versions/{asset.version}")
        wanted = asset.to_dict()
        patch = {
            k: wanted.get(k)
            for k in ("description", "tags", "stage", "display_name", "properties")
            if wanted.get(k) != current.get(k)
        }
        if not patch:
            return _entity(self.kind, current)
        return self.update(asset.name or "", asset.version or "", **patch)

    def update(self, name: str, version: str, **patch: Any) -> Any:
        clean = {k: v for k, v in patch.items() if v is not None}
        return _entity(self.kind, self._t.request("PATCH", f"{self._base}/{name}/versions/{version}", json=clean))

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        if version is not None and label is not None:
            raise UserError("give either version or label, not both")
        if version is None and label is None:
            if self.kind != "component":
                raise UserError(f"getting a {self.kind} needs a version or a label (e.g. label='latest')")
            label = "default"
        if version is not None:
            return _entity(self.kind, self._t.request("GET", f"{self._base}/{name}/versions/{version}"))
        return _entity(self.kind, self._t.request("GET", f"{self._base}/{name}/labels/{label}"))

    def list(
        self,
        name: str | None = None,
        stage: str | None = None,
        *,
        list_view_type: Any = "ActiveOnly",
        max_results: int | None = None,
    ) -> Iterator[Any]:
        params = {"name": name, "stage": stage, "list_view_type": _list_view(list_view_type)}
        return (_entity(self.kind, a) for a in self._t.paged(self._base, params, limit=max_results))

    def _archive(self, verb: str, name: str, version: str | None, label: str | None) -> None:
        body = {"version": version, "label": label} if (version or label) else None
        self._t.request("POST", f"{self._base}/{name}/{verb}", json=body)

    def archive(self, name: str, version: str | None = None, label: str | None = None) -> None:
        self._archive("archive", name, version, label)

    def restore(self, name: str, version: str | None = None, label: str | None = None) -> None:
        self._archive("restore", name, version, label)


class ModelOperations(AssetOperations):
    kind = "model"

    def create_or_update(self, model: Any, **_: Any) -> Any:
        return self._create_or_update(model)

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        path = body.get("path")
        if not path:
            raise SpecError(f"model '{body.get('name')}': a path is required")
        if is_local_path(path):
            local = Path(strip_file_prefix(path))
            if not local.exists():
                raise NotFoundError(f"model '{body.get('name')}': local path '{path}' does not exist")
            if body.get("type") == "mlflow_model" and not (local.is_dir() and (local / "MLmodel").is_file()):
                raise SpecError(
                    f"model '{body.get('name')}': an mlflow_model must be a folder containing an 'MLmodel' "
                    f"file; '{path}' has none"
                )
            body["path"] = self._upload(path, body.get("datastore"))
        return body

    def download(self, name: str, version: str, download_path: str | Path = ".") -> Path:
        """Write the model's files to ``<download_path>/<name>/…``, as azure-ai-ml does."""
        from shoal.client.downloads import download_uri

        model = self.get(name, version=version)
        return download_uri(self._t, self._ws, model.path, Path(download_path) / name)


class DataOperations(AssetOperations):
    kind = "data"

    def create_or_update(self, data: Any, **_: Any) -> Any:
        return self._create_or_update(data)

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        path = body.get("path")
        if path and is_local_path(path):
            local = Path(strip_file_prefix(path))
            what = f"data '{body.get('name')}'"
            kind = body.get("type", "uri_folder")
            if not local.exists():
                raise NotFoundError(f"{what}: local path '{path}' does not exist")
            if kind == "uri_file" and not local.is_file():
                raise SpecError(f"{what}: type uri_file needs a file, but '{path}' is a folder")
            if kind in ("uri_folder", "mltable") and not local.is_dir():
                raise SpecError(f"{what}: type {kind} needs a folder, but '{path}' is a file")
            if kind == "mltable" and not (local / "MLTable").is_file():
                raise SpecError(f"{what}: an mltable folder must contain an 'MLTable' file; '{path}' has none")
            body["path"] = self._upload(path, body.get("datastore"))
        return body

    def import_data(self, data_import: Any, **_: Any) -> Any:
        """azure-ai-ml's data import job: Shoal does not run one (an UnsupportedError naming the
        source), since it reads an external database or store through a connection."""
        source = getattr(data_import, "source", None)
        what = "a database query" if getattr(source, "type", None) == "database" else "a file system path"
        connection = getattr(source, "connection", None) or "?"
        raise UnsupportedError(
            f"data import '{getattr(data_import, 'name', None)}' reads {what} of connection {connection!r}: Shoal "
            "does not run data imports (they need the external database or store). Export the data to a file "
            "and register it with ml_client.data.create_or_update(Data(path=...))"
        )

    def download(self, name: str, version: str, download_path: str | Path = ".") -> Path:
        from shoal.client.downloads import download_uri

        data = self.get(name, version=version)
        return download_uri(self._t, self._ws, data.path, Path(download_path) / name)


class EnvironmentOperations(AssetOperations):
    kind = "environment"

    def create_or_update(self, environment: Any, **_: Any) -> Any:
        return self._create_or_update(environment)

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        build = body.get("build")
        if isinstance(build, dict) and build.get("path") and is_local_path(build["path"]):
            local = Path(strip_file_prefix(build["path"]))
            if not local.is_dir():
                raise NotFoundError(
                    f"environment '{body.get('name')}': build context '{build['path']}' is not a folder"
                )
            body["build"] = {**build, "path": self._upload(build["path"], body.get("datastore"))}
        return body


class CodeOperations(AssetOperations):
    kind = "code"

    def create_or_update(self, code: Any, **_: Any) -> Any:
        return self._create_or_update(code)

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        path = body.get("path")
        if path and is_local_path(path):
            body["path"] = self._upload(path, None)
        return body


class ComponentOperations(AssetOperations):
    kind = "component"

    def create_or_update(
        self, component: Any, version: str | None = None, *, skip_validation: bool = False, **kwargs: Any
    ) -> Any:
        """Register a component: a Component, a ``@dsl.pipeline`` function (as a pipeline
        component) or a ``@command_component`` function; ``version`` overrides its version."""
        to_component = getattr(component, "to_component", None)
        if callable(to_component) and not isinstance(component, Entity):
            component = to_component()
        if version is not None:
            if not isinstance(component, Entity):
                component = parse_entity("component", component)
            component = component.model_copy(update={"version": str(version)})
        return self._create_or_update(component)

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        from shoal.client.component_files import upload_component_files
        from shoal.client.pipelines import LocalPaths

        if body.get("type") == "pipeline":
            # Its steps' local component files are inlined and their code uploaded, as for a
            # pipeline job, so the registered version needs nothing from this machine.
            return LocalPaths(self._t, self._ws).prepare(body)
        return upload_component_files(self._t, self._ws, body)
