"""Downloading a datastore path (file or folder) byte for byte, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from shoal.client.transport import Transport
from shoal.client.uploads import PROGRESS_THRESHOLD
from shoal.entities.refs import parse_path
from shoal.errors import InfraError, UnsupportedError
from shoal.storage.paths import join_inside


def download_uri(transport: Transport, workspace: str, uri: str, destination: Path) -> Path:
    """Copy ``uri`` (a datastore URI) into ``destination``; returns the file or folder written.

    A folder lands as ``destination/<folder name>/…``, a file as ``destination/<file name>``.
    """
    ref = parse_path(uri)
    if ref.scheme != "datastore":
        raise UnsupportedError(f"cannot download {uri!r}: only datastore paths are stored by Shoal")
    rel = ref.path.rstrip("/")
    base = f"/workspaces/{workspace}/datastores/{ref.datastore}"
    listing = transport.request("GET", f"{base}/files", params={"path": rel})
    name = rel.rsplit("/", 1)[-1] if rel else ref.datastore
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / name
    files = listing["value"]
    total = sum(int(f["size"]) for f in files)
    progress = Progress(
        TextColumn("Downloading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        disable=total <= PROGRESS_THRESHOLD,
    )
    with progress:
        task = progress.add_task(name, total=total)
        for item in files:
            remote = f"{rel}/{item['path']}" if listing["is_dir"] else rel
            local = join_inside(target, item["path"]) if listing["is_dir"] else target
            _fetch(transport, f"{base}/content", remote, local, int(item["size"]), progress, task)
    if listing["is_dir"] and not files:
        target.mkdir(parents=True, exist_ok=True)
    return target


def _fetch(
    transport: Transport, route: str, remote: str, local: Path, size: int, progress: Progress, task: int
) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
    written = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in transport.stream_download(route, {"path": remote}):
                fh.write(chunk)
                written += len(chunk)
                progress.advance(task, len(chunk))
        if written != size:
            raise InfraError(f"download of {remote} was cut short ({written} of {size} bytes)")
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
