"""Content hashes for uploads; shared by the client (scanning) and the server (verifying).

Kept free of fsspec so the SDK can import it cheaply. The tree hash depends only on relative
paths, sizes and file contents, so an unchanged folder hashes the same whatever its mtimes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import NotFoundError, UserError
from shoal.storage.paths import is_inside, safe_relpath

CHUNK_SIZE = 1024 * 1024

Ignore = Callable[[str], bool] | Iterable[str] | None


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # POSIX, relative to the scanned folder (or the file's name)
    size: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so memory stays flat for big files."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
    except FileNotFoundError:
        raise NotFoundError(f"file not found: {os.fspath(path)}") from None
    except OSError as exc:
        raise UserError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _entry(full: str, rel: str) -> FileEntry:
    # Size and hash come from the same open file so a concurrent rewrite cannot mix them.
    digest = hashlib.sha256()
    size = 0
    try:
        with open(full, "rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UserError(f"cannot read {full}: {exc.strerror or exc}") from None
    return FileEntry(rel, size, digest.hexdigest())


def scan_file(path: Path | str) -> FileEntry:
    """Hash one file; the entry's path is the file's name."""
    full = os.fspath(path)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise NotFoundError(f"file not found: {full}") from None
    except OSError as exc:
        raise UserError(f"cannot read {full}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"not a regular file: {full}")
    name = safe_relpath(os.path.basename(os.path.abspath(full)))
    return _entry(full, name)


def _ignore_fn(ignore: Ignore) -> Callable[[str], bool]:
    if ignore is None:
        return lambda _rel: False
    if callable(ignore):
        return ignore
    patterns = list(ignore)

    def matches(rel: str) -> bool:
        base = rel.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(base, p) for p in patterns)

    return matches


def scan_folder(path: Path | str, *, ignore: Ignore = None) -> list[FileEntry]:
    """Hash every file below ``path``; returns entries sorted by POSIX relative path.

    ``ignore`` is a predicate on the relative path or a list of glob patterns matched against
    the relative path and the base name; an ignored folder is not descended into. Symbolic
    links are followed only while they stay inside the folder (a link outside, a broken link
    or a loop is a :class:`UserError`), and special files (FIFOs, devices) are refused.
    """
    top = os.fspath(path)
    if not os.path.isdir(top):
        if not os.path.exists(top):
            raise NotFoundError(f"folder not found: {top}")
        raise UserError(f"not a folder: {top}")
    root_real = os.path.realpath(top)
    skip = _ignore_fn(ignore)
    out: list[FileEntry] = []
    _walk(top, "", root_real, {root_real}, skip, out)
    out.sort(key=lambda e: e.path)
    return out


def _walk(
    folder: str,
    prefix: str,
    root_real: str,
    active: set[str],
    skip: Callable[[str], bool],
    out: list[FileEntry],
) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda d: d.name)
    except OSError as exc:
        raise UserError(f"cannot list {folder}: {exc.strerror or exc}") from None
    for d in entries:
        rel = f"{prefix}{d.name}"
        if skip(rel):
            continue
        safe_relpath(rel)  # a name the server would refuse fails here, naming the local file
        full = d.path
        if d.is_symlink():
            if not is_inside(root_real, full):
                raise UserError(f"symbolic link {full} points outside the folder being uploaded")
            if not os.path.exists(full):
                raise UserError(f"broken symbolic link: {full}")
        try:
            st = os.stat(full)
        except OSError as exc:
            raise UserError(f"cannot read {full}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            real = os.path.realpath(full)
            if real in active:
                raise UserError(f"symbolic link loop at {full}")
            _walk(full, rel + "/", root_real, active | {real}, skip, out)
        elif stat.S_ISREG(st.st_mode):
            out.append(_entry(full, rel))
        else:
            raise UserError(f"not a regular file or folder (device, FIFO or socket): {full}")


def tree_hash(entries: Iterable[FileEntry]) -> str:
    """sha256 over sorted ``path\\0size\\0sha256\\n`` lines: the identity of a folder's content."""
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.path):
        digest.update(f"{e.path}\0{e.size}\0{e.sha256}\n".encode())
    return digest.hexdigest()
