"""Downloading a datastore path (file or folder) byte for byte, written atomically.

Small files come in batches (``POST …/contents/read``: one request for up to ``BATCH_FILES``
files, which the server reads from the store many at once), on ``WORKERS`` connections. A large
file streams into a ``.part`` file; when the connection drops (a server restart) the download
resumes where it stopped with ``Range: bytes=<n>-``, retrying for up to ``RESUME_FOR`` seconds.
Every file is renamed into place only once it is whole.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from shoal.client.progress import transfer_progress
from shoal.client.transport import Transport
from shoal.entities.refs import parse_path
from shoal.errors import InfraError, ServerUnavailableError, UnsupportedError, error_from_wire
from shoal.storage.batches import batched
from shoal.storage.paths import join_inside

SMALL = 1024 * 1024
WORKERS = 4
RESUME_FOR = 120.0


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
    small: list[tuple[str, Path, int]] = []
    tasks: list[Callable[[], None]] = []
    progress = transfer_progress("Downloading", total)
    task = progress.add_task(name, total=total)
    for item in files:
        remote = f"{rel}/{item['path']}" if listing["is_dir"] else rel
        local = join_inside(target, item["path"]) if listing["is_dir"] else target
        size = int(item["size"])
        if size <= SMALL and listing["is_dir"]:
            small.append((remote, local, size))
        else:
            tasks.append(lambda r=remote, lo=local, s=size: _fetch(transport, base, r, lo, s, progress.advance, task))
    for group in batched(small):
        tasks.append(lambda g=group: _fetch_batch(transport, base, g, progress.advance, task))
    with progress:
        _run(tasks)
    if listing["is_dir"] and not files:
        target.mkdir(parents=True, exist_ok=True)
    return target


def _run(tasks: list[Callable[[], None]]) -> None:
    if len(tasks) <= 1:
        for t in tasks:
            t()
        return
    with ThreadPoolExecutor(min(WORKERS, len(tasks))) as pool:
        futures = [pool.submit(t) for t in tasks]
        try:
            for future in futures:
                future.result()
        finally:
            for future in futures:
                future.cancel()  # the first error ends the download: nothing new starts


def _fetch(
    transport: Transport, base: str, remote: str, local: Path, size: int, advance: Callable[..., Any], task: Any
) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
    written = 0
    deadline: float | None = None
    try:
        with os.fdopen(fd, "wb") as fh:
            while True:
                headers = {"Range": f"bytes={written}-"} if written else None
                try:
                    with transport.stream("GET", f"{base}/content", params={"path": remote}, headers=headers) as resp:
                        if written and resp.status_code != 206:  # the whole file again: start over
                            advance(task, advance=-written)
                            fh.seek(0)
                            fh.truncate()
                            written = 0
                        for chunk in resp.iter_bytes(1024 * 1024):
                            fh.write(chunk)
                            written += len(chunk)
                            advance(task, advance=len(chunk))
                    break
                except (ServerUnavailableError, httpx.TransportError):
                    # The server went away (mid-file, or before answering): wait for it, then
                    # ask for the rest.
                    deadline = deadline or time.monotonic() + RESUME_FOR
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
        if written != size:
            raise InfraError(f"download of {remote} was cut short ({written} of {size} bytes)")
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fetch_batch(
    transport: Transport, base: str, group: list[tuple[str, Path, int]], advance: Callable[..., Any], task: Any
) -> None:
    """Small files in one response: ``{"path", "size"}`` header lines, each followed by the
    bytes (or an error record, raised as the server's error)."""
    targets = {remote: local for remote, local, _ in group}
    done = 0
    buf = bytearray()
    with transport.stream("POST", f"{base}/contents/read", json={"paths": list(targets)}) as resp:
        for chunk in resp.iter_bytes(1024 * 1024):
            buf += chunk
            while (end := buf.find(b"\n")) >= 0:
                head = json.loads(bytes(buf[:end]))
                if "error" in head:
                    raise error_from_wire({"error": head["error"]}, 500)
                size = int(head["size"])
                if len(buf) < end + 1 + size:
                    break
                local = targets.get(str(head["path"]))
                if local is None:
                    raise InfraError(f"the server sent {head['path']!r}, which was not asked for")
                _write_whole(local, bytes(buf[end + 1 : end + 1 + size]))
                del buf[: end + 1 + size]
                done += 1
                advance(task, advance=size)
    if done != len(targets) or buf:
        raise InfraError(f"a batch download was cut short ({done} of {len(targets)} files)")


def _write_whole(local: Path, data: bytes) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
