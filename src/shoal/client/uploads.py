"""Uploading local files and folders to a datastore, content-addressed.

Only files the server does not already hold under ``LocalUpload/<hash>/<name>`` are sent, so
re-uploading an unchanged folder sends nothing. Uploads over a few MB show a progress bar on a
terminal (``client/progress.py``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.client.progress import transfer_progress
from shoal.client.transport import Transport
from shoal.errors import NotFoundError
from shoal.storage.hashing import FileEntry, scan_file, scan_folder, tree_hash

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One file to send: where it lies locally, and its entry in the manifest."""

    local: Path
    entry: FileEntry


SNAPSHOT_WARN_BYTES = 300 * 1024 * 1024
SNAPSHOT_WARN_FILES = 2000


def ignore_rules(folder: Path) -> Any:
    """A code snapshot's ignore rules: ``.amlignore`` in the folder's root beats ``.gitignore``
    (gitwildmatch semantics, as Azure ML); neither means nothing is ignored."""
    import pathspec

    for name in (".amlignore", ".gitignore"):
        rules = folder / name
        if rules.is_file():
            spec = pathspec.PathSpec.from_lines("gitwildmatch", rules.read_text().splitlines())
            return lambda rel: spec.match_file(rel) or spec.match_file(rel + "/")
    return None


def collect(
    path: Path, *, extra_folders: list[Path] | None = None, ignore_files: bool = False
) -> tuple[str, str, list[Source]]:
    """(name, kind, sources) for a file or a folder, plus folders merged in (additional_includes)."""
    if not path.exists():
        raise NotFoundError(f"local path '{path}' does not exist")
    if path.is_file():
        entry = scan_file(path)
        return entry.path, "file", [Source(path, entry)]
    ignore = ignore_rules(path) if ignore_files else None
    sources = [Source(path / e.path, e) for e in scan_folder(path, ignore=ignore)]
    for extra in extra_folders or []:
        if not extra.exists():
            raise NotFoundError(f"additional include '{extra}' does not exist")
        if extra.is_file():
            entry = scan_file(extra)
            sources.append(Source(extra, entry))
        else:
            for e in scan_folder(extra):
                rel = f"{extra.name}/{e.path}"
                sources.append(Source(extra / e.path, FileEntry(rel, e.size, e.sha256)))
    return path.name, "folder", sources


def upload_path(
    transport: Transport,
    workspace: str,
    local: str | os.PathLike[str],
    *,
    datastore: str = "workspaceblobstore",
    extra_folders: list[Path] | None = None,
    show_progress: bool | None = None,
    ignore_files: bool = False,
) -> str:
    """Upload a local file or folder; returns its ``azureml://datastores/…`` URI.

    ``ignore_files`` applies ``.amlignore``/``.gitignore`` (code snapshots)."""
    path = Path(local).expanduser().resolve()
    name, kind, sources = collect(path, extra_folders=extra_folders, ignore_files=ignore_files)
    entries = [s.entry for s in sources]
    total_bytes = sum(e.size for e in entries)
    if ignore_files and (total_bytes > SNAPSHOT_WARN_BYTES or len(entries) > SNAPSHOT_WARN_FILES):
        warnings.warn(
            f"the snapshot of {path} has {len(entries)} files and {total_bytes // (1024 * 1024)} MB; Azure ML's "
            "limit is 300 MB and 2,000 files: keep data out of the code folder or list it in .amlignore",
            stacklevel=2,
        )
    manifest = {
        "name": name,
        "kind": kind,
        "hash": tree_hash(entries),
        "files": [e.to_dict() for e in entries],
    }
    base = f"/workspaces/{workspace}/datastores/{datastore}/uploads"
    started = transport.request("POST", base, json=manifest)
    upload_id = started.get("upload_id")
    if not upload_id:
        return str(started["path"])  # the same content is already stored

    total = sum(e.size for e in entries)
    progress = transfer_progress("Uploading", total, show=show_progress)
    with progress:
        task = progress.add_task(name, total=total)
        for source in sources:

            def chunks(src: Path = source.local) -> Iterator[bytes]:
                with open(src, "rb") as fh:
                    while block := fh.read(CHUNK):
                        progress.advance(task, len(block))
                        yield block

            transport.request(
                "PUT",
                f"{base}/{upload_id}/files",
                params={"path": source.entry.path},
                content=chunks(),
                headers={"content-type": "application/octet-stream"},
            )
    committed = transport.request("POST", f"{base}/{upload_id}/commit")
    return str(committed["path"])
