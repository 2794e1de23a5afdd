"""Datastore file access for the server: listing, reading, content-addressed uploads."""

from __future__ import annotations

from shoal.errors import NotFoundError
from shoal.services.context import ServiceContext
from shoal.services.storage import datastores
from shoal.services.workspaces import BUILTIN_DATASTORES, builtin_datastore_path
from shoal.storage.datastores import resolve_datastore_fs, secret_values
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.uploads import UploadManager


def store_for(ctx: ServiceContext, workspace: str, datastore: str) -> ArtifactStore:
    """The file tree behind a datastore; cached per (workspace, datastore, row and its last
    change). Every file request asks: a cached tree costs one narrow read, not the whole row."""
    found = datastores.version(ctx, workspace, datastore)
    key = (workspace, datastore, *found) if found is not None else None
    cache = ctx.stores
    store = cache.get(key) if key is not None else None
    if store is None:
        row = datastores.get_row(ctx, workspace, datastore)  # NOT_FOUND, with the names there are
        key = (workspace, datastore, row.id, row.updated_at)
        secrets = ctx.secrets.decrypt(row.secrets) if row.secrets else {}
        label = f"datastore '{datastore}'"
        if row.type == "local" and datastore in BUILTIN_DATASTORES:
            store = ArtifactStore(builtin_datastore_path(ctx, workspace, datastore), label=label)
        elif row.type == "local":
            # Checked again when opened: the roots may have changed since it was created.
            store = ArtifactStore(ctx.local_roots.check(str(row.spec.get("path") or ""), label), label=label)
        else:
            fs, root = resolve_datastore_fs(
                row.type, row.spec, secrets, artifact_root=ctx.artifact_root, workspace=workspace
            )
            # Driver messages are passed on only with every stored secret blanked out.
            store = ArtifactStore(root, fs=fs, label=label, hide=secret_values(secrets))
        cache[key] = store
    return store


def uploads_for(ctx: ServiceContext, workspace: str, datastore: str) -> UploadManager:
    return UploadManager(store_for(ctx, workspace, datastore), session_ttl=ctx.settings.upload_session_ttl)


def readable_store(ctx: ServiceContext, workspace: str, datastore: str) -> ArtifactStore | None:
    """The store when its contents can be checked from here; None for remote cloud stores,
    whose contents are only looked at when a job reads them."""
    if datastores.get_row(ctx, workspace, datastore).type != "local":
        return None
    return store_for(ctx, workspace, datastore)


def require_path(store: ArtifactStore, rel: str, what: str, datastore: str) -> None:
    if not store.exists(rel):
        raise NotFoundError(
            f"{what}: path '{rel}' not found in datastore '{datastore}'",
            details={"datastore": datastore, "path": rel},
        )
