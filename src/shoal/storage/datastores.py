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
from shoal.storage.endpoints import check_endpoints
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.objects import s3_options
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
    # No listings cache: others write to the same bucket (users, other server workers), and a
    # stale listing would hide a job's output. One instance per datastore (skip the fsspec cache)
    # so changed credentials take effect and a failed one is not reused.
    kwargs.update(use_listings_cache=False, skip_instance_cache=True)
    try:
        return fsspec.filesystem(protocol, **{k: v for k, v in kwargs.items() if v is not None})
    except ImportError:
        raise UnsupportedError(f"{protocol} datastores need an extra package: install shoal[{extra}]") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid {protocol} datastore settings: {exc}") from None


def credentials_of(spec: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The datastore's whole credentials: the public keys of ``spec['credentials']`` (an access
    key id, a tenant id) joined with the decrypted secret ones, which ``split_secrets`` stored
    nested the same way (``{"credentials": {...}}``)."""
    creds: dict[str, Any] = {}
    public = spec.get("credentials")
    if isinstance(public, dict):
        creds.update(public)
    nested = secrets.get("credentials")
    if isinstance(nested, dict):
        creds.update(nested)
    # Older callers passed the secret keys at the top level.
    creds.update({k: v for k, v in secrets.items() if k != "credentials" and isinstance(v, str)})
    return creds


def secret_values(secrets: dict[str, Any]) -> list[str]:
    """Every secret string in a decrypted secrets object, and the parts of a connection string
    (its ``AccountKey=...`` value is what a driver might echo)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, str) and value:
            out.append(value)
            if ";" in value and "=" in value:
                out.extend(p.split("=", 1)[1] for p in value.split(";") if "=" in p and "key" in p.lower())
            if "sig=" in value:  # a SAS token: its signature alone is enough to use it
                out.extend(p[4:] for p in value.lstrip("?").split("&") if p.startswith("sig="))

    walk(secrets)
    return [v for v in out if len(v) >= 4]


def blob_account_url(account: str, spec: dict[str, Any]) -> str:
    """The blob service URL of an Azure storage account, as Azure builds it from the YAML
    (``{protocol}://{account}.blob.{endpoint}``). An ``endpoint`` that is itself a URL names
    a path-style service such as the Azurite emulator (``http://127.0.0.1:10000``): the
    account is then the first path segment, as emulators expect."""
    endpoint = str(spec.get("endpoint") or "core.windows.net").strip().rstrip("/")
    if "://" in endpoint:
        return endpoint if endpoint.rsplit("/", 1)[-1] == account else f"{endpoint}/{account}"
    protocol = str(spec.get("protocol") or "https").strip().lower()
    if protocol not in ("https", "http"):
        raise UserError(f"invalid protocol {protocol!r}: use https (or http)")
    return f"{protocol}://{account}.blob.{endpoint}"


def _azure_kwargs(account: str, spec: dict[str, Any], creds: dict[str, Any]) -> dict[str, Any]:
    conn = creds.get("connection_string")
    if conn:
        return {"connection_string": conn}
    url = blob_account_url(account, spec)
    if url != f"https://{account}.blob.core.windows.net" and (creds.get("account_key") or creds.get("sas_token")):
        # adlfs takes only a host for a custom endpoint (and assumes https): a connection
        # string carries the full URL, so the same keys reach an emulator or a sovereign cloud.
        parts = [f"BlobEndpoint={url}", f"AccountName={account}"]
        if creds.get("account_key"):
            parts.append(f"AccountKey={creds['account_key']}")
        else:
            parts.append(f"SharedAccessSignature={str(creds['sas_token']).lstrip('?')}")
        return {"connection_string": ";".join(parts)}
    host = url.split("://", 1)[1]
    return {
        "account_name": account,
        "account_host": None if host == f"{account}.blob.core.windows.net" else host,
        "account_key": creds.get("account_key"),
        "sas_token": creds.get("sas_token"),
        "tenant_id": creds.get("tenant_id"),
        "client_id": creds.get("client_id"),
        "client_secret": creds.get("client_secret"),
    }


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
    # Checked again at every open: a name may resolve elsewhere now (the server's own host is
    # checked at creation, where the creator's rights are known).
    check_endpoints(ds_type, spec, allow_loopback=True, label=f"datastore '{spec.get('name')}'")
    creds = credentials_of(spec, secrets)
    if ds_type == "s3":
        bucket = _segment(_required(spec, "bucket", ds_type), "bucket")
        prefix = (spec.get("prefix") or "").strip("/")
        if prefix:
            prefix = safe_relpath(prefix)
        fs = _driver(
            "s3",
            "s3",
            **s3_options({}),
            key=creds.get("access_key_id"),
            secret=creds.get("secret_access_key"),
            token=creds.get("session_token"),
            endpoint_url=spec.get("endpoint_url"),
            client_kwargs={"region_name": spec["region"]} if spec.get("region") else None,
        )
        return fs, f"{bucket}/{prefix}" if prefix else bucket
    if ds_type in _AZURE_TYPES:
        account = _required(spec, "account_name", ds_type)
        key = "container_name" if ds_type == "azure_blob" else "filesystem"
        container = _segment(_required(spec, key, ds_type), key)
        fs = _driver("abfs", "azure", **_azure_kwargs(account, spec, creds))
        return fs, container
    raise UnsupportedError(
        f"datastore type {ds_type!r} is not supported; supported types: {', '.join(SUPPORTED_TYPES)}"
    )
