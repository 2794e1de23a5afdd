"""Map a datastore (type, spec, decrypted secrets) onto an fsspec filesystem and a root path.

``azureml://datastores/<name>/paths/<p>`` resolves to ``DatastoreFiles(fs, root)`` + ``<p>``
(which callers still pass through ``safe_relpath``). Cloud drivers are imported only when a
datastore of that type is used, so a plain install never needs s3fs or adlfs.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from shoal.errors import InfraError, UnsupportedError, UserError
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.paths import safe_relpath

BUILTIN_DATASTORES = ("workspaceblobstore", "workspaceartifactstore")
_AZURE_TYPES = ("azure_blob", "azure_data_lake_gen2")
SUPPORTED_TYPES = ("local", "s3", *_AZURE_TYPES)


class DatastoreFiles(ArtifactStore):
    """The files of one datastore: the same list/open/write_stream API as ``ArtifactStore``."""

    def __init__(self, fs: Any, root: str) -> None:
        super().__init__(root, fs=fs, create=False)  # built-ins are created by the resolver


def _segment(value: Any, what: str) -> str:
    if not isinstance(value, str) or "/" in value or safe_relpath(value) != value:
        raise UserError(f"invalid {what} {value!r}: must be a single path segment")
    return value


def _required(spec: dict[str, Any], key: str, ds_type: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"a {ds_type} datastore needs '{key}'")
    return value.strip()


def _is_builtin(spec: dict[str, Any], builtin: bool) -> bool:
    props = spec.get("properties") or {}
    flag = props.get("shoal_builtin", spec.get("shoal_builtin")) if isinstance(props, dict) else None
    return builtin or flag is True or str(flag).lower() == "true"


def _driver(protocol: str, extra: str, **kwargs: Any) -> Any:
    try:
        return fsspec.filesystem(protocol, **{k: v for k, v in kwargs.items() if v is not None})
    except ImportError:
        raise UnsupportedError(f"{protocol} datastores need an extra package: install shoal[{extra}]") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid {protocol} datastore settings: {exc}") from None


def resolve_datastore_fs(
    ds_type: str,
    spec: dict[str, Any],
    secrets: dict[str, Any],
    *,
    artifact_root: str,
    workspace: str,
    builtin: bool = False,
) -> tuple[Any, str]:
    """Return ``(filesystem, root_path)`` for a datastore; secrets are the decrypted credentials."""
    secrets = secrets or {}
    if _is_builtin(spec, builtin):
        name = _segment(spec.get("name"), "datastore name")
        ws = _segment(workspace, "workspace name")
        store = ArtifactStore(artifact_root, create=False)  # lazy driver import, clear errors
        if store.is_local:
            root = os.path.join(store.root, "workspaces", ws, "datastores", name)
            try:
                os.makedirs(root, exist_ok=True)
            except OSError as exc:
                raise InfraError(f"cannot create datastore folder {root}: {exc.strerror or exc}") from None
            return store.fs, root
        return store.fs, posixpath.join(store.root, "workspaces", ws, "datastores", name)
    if ds_type == "local":
        path = _required(spec, "path", ds_type)
        path = path[len("file://") :] if path.lower().startswith("file://") else path
        if not os.path.isabs(path):
            raise UserError(f"a local datastore path must be absolute, got {path!r}")
        return LocalFileSystem(), os.path.realpath(path)
    if ds_type == "s3":
        bucket = _segment(_required(spec, "bucket", ds_type), "bucket")
        prefix = (spec.get("prefix") or "").strip("/")
        if prefix:
            prefix = safe_relpath(prefix)
        fs = _driver(
            "s3",
            "s3",
            key=secrets.get("access_key_id") or secrets.get("key"),
            secret=secrets.get("secret_access_key") or secrets.get("secret"),
            token=secrets.get("session_token") or secrets.get("token"),
            endpoint_url=spec.get("endpoint_url"),
            client_kwargs={"region_name": spec["region"]} if spec.get("region") else None,
        )
        return fs, f"{bucket}/{prefix}" if prefix else bucket
    if ds_type in _AZURE_TYPES:
        account = _required(spec, "account_name", ds_type)
        key = "container_name" if ds_type == "azure_blob" else "filesystem"
        container = _segment(_required(spec, key, ds_type), key)
        endpoint = spec.get("endpoint") or "core.windows.net"
        fs = _driver(
            "abfs",
            "azure",
            account_name=account,
            account_host=None if endpoint == "core.windows.net" else f"{account}.blob.{endpoint}",
            account_key=secrets.get("account_key"),
            sas_token=secrets.get("sas_token"),
            connection_string=secrets.get("connection_string"),
            tenant_id=secrets.get("tenant_id"),
            client_id=secrets.get("client_id"),
            client_secret=secrets.get("client_secret"),
        )
        return fs, container
    raise UnsupportedError(
        f"datastore type {ds_type!r} is not supported; supported types: {', '.join(SUPPORTED_TYPES)}"
    )
