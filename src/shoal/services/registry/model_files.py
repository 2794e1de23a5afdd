"""A model version's files as MLflow clients fetch them: the download URI of a version, and the
read-only listing and files of a version stored on another datastore than the artifact store.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from shoal.entities.refs import parse_path
from shoal.errors import NotFoundError, SpecError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.registry.common import container_row, version_arg, version_row
from shoal.services.registry.model_sources import ARTIFACTS
from shoal.services.storage import files
from shoal.services.tracking.values import str_arg
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath

FILES = "model-files"


def download_uri(path: str, name: str, version: str, tracking_uri: str | None = None) -> str:
    """Where an MLflow client fetches a version's files: the artifact proxy for the artifact
    store (every model MLflow logged); for a model asset on another datastore (``shoal model
    create`` uploads to ``workspaceblobstore``), the read-only file routes of that version under
    the tracking URI; else (a web or cloud URL) the path itself."""
    try:
        ref = parse_path(path)
    except SpecError:
        return path
    if ref.scheme == "datastore" and ref.datastore == job_state.ARTIFACTS_DATASTORE:
        return f"{ARTIFACTS}:/{ref.path.strip('/')}"
    if ref.scheme == "datastore" and tracking_uri:
        quoted = f"{urllib.parse.quote(name, safe='')}/{urllib.parse.quote(version, safe='')}"
        return f"{tracking_uri.rstrip('/')}/{FILES}/{quoted}/api/2.0/mlflow-artifacts/artifacts"
    return path


def get_model_version_download_uri(
    ctx: ServiceContext, workspace: str, data: dict[str, Any], tracking_uri: str | None = None
) -> dict[str, Any]:
    name, version = str_arg(data, "name"), version_arg(data)
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        row = version_row(session, container, version)
        return {"artifact_uri": download_uri(str(row.spec["path"]), name, version, tracking_uri)}


def _version_root(ctx: ServiceContext, workspace: str, name: str, version: str) -> tuple[Any, str]:
    """The store and folder of a model version's files (any datastore of the workspace)."""
    with ctx.db.read() as session:
        container = container_row(session, workspace_id(session, workspace), name)
        path = str(version_row(session, container, version).spec["path"])
    ref = parse_path(path)
    if ref.scheme != "datastore":
        raise NotFoundError(f"Model version {name}/{version} is not stored in this workspace ({path})")
    return files.store_for(ctx, workspace, ref.datastore), ref.path.strip("/")


def _inside(root: str, sub: str | None) -> str:
    sub = safe_relpath(sub or "", allow_empty=True)
    return f"{root}/{sub}" if sub else root


def list_version_files(
    ctx: ServiceContext, workspace: str, name: str, version: str, path: str | None
) -> dict[str, Any]:
    """MLflow's artifact listing (immediate children by base name) of a version's folder."""
    store, root = _version_root(ctx, workspace, name, version)
    rel = _inside(root, path)
    if not store.isdir(rel):
        return {}
    out = []
    for child in store.list_dir(rel):
        full = f"{rel}/{child}"
        if store.isdir(full):
            out.append({"path": child, "is_dir": True})
        elif store.isfile(full):
            out.append({"path": child, "is_dir": False, "file_size": store.list_files(full)[0].size})
    return {"files": out} if out else {}


def version_file(ctx: ServiceContext, workspace: str, name: str, version: str, path: str) -> tuple[Any, str]:
    store, root = _version_root(ctx, workspace, name, version)
    rel = _inside(root, path)
    if not store.isfile(rel):
        raise NotFoundError(f"Artifact '{path}' of model version {name}/{version} not found")
    return store, rel
