"""A command component's local files made server-side: its code folder (with
``additional_includes`` merged in) uploaded and registered as an anonymous code asset named by
its content hash, as Azure ML does, and a local environment build context uploaded.

Used by component registration and by every job body that inlines a component (pipeline steps),
so both send the same snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal.client.transport import Transport
from shoal.client.uploads import upload_path
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.errors import ConflictError, NotFoundError


def upload_component_files(transport: Transport, workspace: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its local code folder and build context replaced by server references."""
    code = body.get("code")
    if isinstance(code, str) and is_local_path(code):
        local = Path(strip_file_prefix(code))
        if not local.is_dir():
            raise NotFoundError(f"component '{body.get('name')}': code folder '{code}' does not exist")
        includes = [Path(strip_file_prefix(p)) for p in body.get("additional_includes") or []]
        for inc in includes:
            if not inc.exists():
                raise NotFoundError(f"component '{body.get('name')}': additional include '{inc}' does not exist")
        uri = _upload(transport, workspace, code, extra_folders=includes, ignore_files=True)
        # As in Azure ML, the snapshot becomes an anonymous code asset named by its hash.
        digest = uri.split("/LocalUpload/", 1)[1].split("/", 1)[0]
        try:
            transport.request(
                "PUT",
                f"/workspaces/{workspace}/codes/{digest}/versions/1",
                json={"name": digest, "version": "1", "path": uri},
            )
        except ConflictError:
            # The same files uploaded before from a folder of another name (the hash is of
            # the contents only): that asset is this snapshot, and Azure ML reuses it too.
            pass
        body["code"] = f"azureml:{digest}:1"
        if includes:  # merged into the snapshot; keep only their names, not local paths
            body["additional_includes"] = [inc.name for inc in includes]
    env = body.get("environment")
    if isinstance(env, dict) and isinstance(env.get("build"), dict):
        build = env["build"]
        if build.get("path") and is_local_path(build["path"]):
            env["build"] = {**build, "path": _upload(transport, workspace, build["path"])}
    return body


def _upload(transport: Transport, workspace: str, local: str, **kwargs: Any) -> str:
    return upload_path(transport, workspace, strip_file_prefix(local), datastore="workspaceblobstore", **kwargs)
