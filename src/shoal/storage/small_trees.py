"""A datastore file or folder small enough to travel inside a runner's run spec.

A pipeline step's input is often one small file its upstream step wrote. Read by the runner, it
costs two round trips to the server (a listing, then the bytes) on every step's start; sent with
the run spec it costs none. Only local stores (a folder on the server's disk) are read here: an
object store's listing is itself a round trip to the store, which the runner can make as well.
"""

from __future__ import annotations

import os
import stat

from shoal.errors import ShoalError
from shoal.storage.filesystem import TMP_PREFIX, ArtifactStore

Tree = tuple[bool, list[tuple[str, bytes]]]


def read_small(store: ArtifactStore, rel: str, *, max_files: int, max_bytes: int) -> Tree | None:
    """``(is_dir, [(path, content), ...])`` of a local store's file or folder holding at most
    ``max_files`` regular files of at most ``max_bytes`` together (paths relative to the folder;
    a file's own name for a file). None where it is bigger, missing, remote or not a plain file or
    folder: the runner then lists and downloads it as usual, and sees the usual errors.

    The walk stops at the first file over the limits, so a folder of 10,000 files costs a few
    directory reads, not a listing. Links are neither followed nor sent, as in a listing."""
    try:
        root = store.local_path(rel)
    except ShoalError:
        return None
    if root is None:
        return None
    try:
        top = os.lstat(root)
    except OSError:
        return None
    if stat.S_ISREG(top.st_mode):
        content = _read(os.fspath(root), max_bytes)
        return None if content is None else (False, [(root.name, content)])
    if not stat.S_ISDIR(top.st_mode):
        return None
    found: list[tuple[str, str]] = []
    total = 0
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            if name.startswith(TMP_PREFIX):
                continue
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except OSError:
                return None
            if not stat.S_ISREG(info.st_mode):
                continue
            total += info.st_size
            if len(found) >= max_files or total > max_bytes:
                return None
            found.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    out = []
    for relpath, path in found:
        content = _read(path, max_bytes)
        if content is None:
            return None
        out.append((relpath, content))
    return True, out


def _read(path: str, max_bytes: int) -> bytes | None:
    """The file's bytes, opened without following a link swapped in since the walk; None when it
    is gone or grew past ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        content = fh.read(max_bytes + 1)
    return content if len(content) <= max_bytes else None
