"""Artifact storage over fsspec, with atomic writes and a local-disk fast path.

Every method takes a client-style relative path and runs it through ``safe_relpath``; on local
disk the joined path is also checked with ``realpath`` so a symlink cannot lead outside the
root. Writes land under a temporary sibling name and are renamed into place only after the
size and hash check, so a reader never sees a half-written file under its final name. On S3 and
Azure Blob (``objects.py``) a write goes to its final key as a multipart upload (staged blocks)
that is completed only after that check, and small files are single PUTs, many at once: both
stores publish an object whole or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from shoal.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ShoalError,
    UnsupportedError,
    UserError,
)
from shoal.storage import direct_blobs, direct_uploads
from shoal.storage.direct_uploads import DirectUpload
from shoal.storage.hashing import FileEntry
from shoal.storage.objects import S3IO, ItemFailed, ObjectWriter, object_io, s3_options
from shoal.storage.paths import join_inside, safe_relpath
from shoal.storage.sinks import FsspecSink, LocalSink, file_chunks
from shoal.storage.store_errors import local_error, remote_error

TMP_PREFIX = ".shoal-tmp-"
_SHA256_HEX = frozenset("0123456789abcdef")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: str  # POSIX, relative to the listed prefix
    size: int


def _check_rel(rel: str, *, allow_empty: bool = False) -> str:
    rel = safe_relpath(rel, allow_empty=allow_empty)
    if any(seg.startswith(TMP_PREFIX) for seg in rel.split("/")):
        raise UserError(f"invalid path {rel!r}: names starting with {TMP_PREFIX!r} are reserved")
    return rel


def _link_or_replace(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # a hard link never overwrites: EEXIST when another upload won
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        os.replace(src, dst)  # no hard links here; same content, so replacing is harmless
        return
    os.unlink(src)


class ArtifactStore:
    """Files under ``root``: a local folder, ``file://``, ``memory://``, ``s3://``, ``abfs://``...

    Pass ``fs`` to wrap an already configured fsspec filesystem; ``root`` is then a path inside
    it. The root folder is created for local and memory stores only (never a bucket).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fs: Any = None,
        create: bool = True,
        label: str = "the artifact storage",
        hide: Iterable[str] = (),
    ) -> None:
        root = os.fspath(root)
        # How errors name this store ("datastore 'x'"), and secrets no message may contain.
        self.label = label
        self._hide = tuple(str(h) for h in hide if h)
        if fs is None:
            try:
                protocol = fsspec.core.split_protocol(root)[0]
                # Object stores: no listings cache (another writer's files must show at once).
                options = {} if protocol in (None, "file", "local", "memory") else {"use_listings_cache": False}
                if protocol in ("s3", "s3a"):
                    options = s3_options(options)
                fs, root = fsspec.core.url_to_fs(root, **options)
            except ImportError as exc:
                raise UnsupportedError(
                    f"no filesystem driver for {root!r}: install shoal[s3] or shoal[azure] ({exc})"
                ) from None
            except ValueError as exc:
                raise UserError(f"invalid artifact root {root!r}: {exc}") from None
        self.fs = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.io = None if self.is_local else object_io(fs)  # S3 / Azure Blob: parallel, multipart
        self._publish_lock = threading.Lock()
        if self.is_local:
            self.root = os.path.realpath(root)
            if create:
                with self._errors("create", self.root):
                    os.makedirs(self.root, exist_ok=True)
        else:
            self.root = root.rstrip("/")
            if create and isinstance(fs, MemoryFileSystem):
                fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r}, protocol={self.fs.protocol!r})"

    @contextlib.contextmanager
    def _errors(self, action: str, rel: str) -> Iterator[None]:
        try:
            yield
        except ShoalError:
            raise
        except OSError as exc:
            if self.is_local:
                raise local_error(action, rel, exc) from exc
            raise remote_error(self.label, action, rel, exc, self._hide) from None
        except Exception as exc:
            if self.is_local:
                raise
            raise remote_error(self.label, action, rel, exc, self._hide) from None

    # -- path mapping --------------------------------------------------------------------
    def _full(self, rel: str) -> str:
        """Map an already checked relative path to a path on ``self.fs``."""
        if self.is_local:
            return os.fspath(join_inside(self.root, rel, allow_empty=True))
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str) -> Path | None:
        """The on-disk path for ``rel`` when the store is local (downloads can stream it)."""
        rel = _check_rel(rel, allow_empty=True)
        return join_inside(self.root, rel, allow_empty=True) if self.is_local else None

    # -- queries -------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        full = self._full(_check_rel(rel, allow_empty=True))
        with self._errors("check", rel):
            return os.path.lexists(full) if self.is_local else bool(self.fs.exists(full))

    def isdir(self, rel: str) -> bool:
        full = self._full(_check_rel(rel, allow_empty=True))
        with self._errors("check", rel):
            return os.path.isdir(full) if self.is_local else bool(self.fs.isdir(full))

    def isfile(self, rel: str) -> bool:
        full = self._full(_check_rel(rel, allow_empty=True))
        with self._errors("check", rel):
            return os.path.isfile(full) if self.is_local else bool(self.fs.isfile(full))

    def list_dir(self, rel: str = "") -> list[str]:
        """Names of the immediate children of a folder (empty when it does not exist)."""
        rel = _check_rel(rel, allow_empty=True)
        full = self._full(rel)
        with self._errors("list", rel):
            if self.is_local:
                names = os.listdir(full) if os.path.isdir(full) else []
            elif self.fs.isdir(full):
                names = [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(full, detail=False)]
            else:
                names = []
        return sorted(n for n in names if not n.startswith(TMP_PREFIX))

    def modified(self, rel: str) -> float | None:
        """Last-modified time as a POSIX timestamp, or None when the backend cannot tell."""
        full = self._full(_check_rel(rel, allow_empty=True))
        if self.is_local:
            with self._errors("stat", rel):
                return os.lstat(full).st_mtime
        try:
            return self.fs.modified(full).timestamp()
        except FileNotFoundError:
            raise NotFoundError(f"{rel!r} not found") from None
        except (NotImplementedError, OSError, AttributeError, ValueError):
            return None

    def list_files(self, prefix_rel: str = "") -> list[StoredFile]:
        """Every file below ``prefix_rel`` (recursive, sorted), paths relative to the prefix.

        A file prefix lists that one file under its base name. A missing prefix is a
        :class:`NotFoundError`, except the empty prefix of a store that has no files yet.
        """
        return self.list_tree(prefix_rel)[1]

    def list_tree(self, prefix_rel: str = "") -> tuple[bool, list[StoredFile]]:
        """``list_files`` and whether ``prefix_rel`` is a folder (True for the store's root). On
        S3 and Azure Blob one listing of the store answers both for a folder with files in it
        (a folder and a file of one name: the folder); only where it finds nothing is the name
        itself looked up (a file, an empty folder's marker, or nothing)."""
        rel = _check_rel(prefix_rel, allow_empty=True)
        full = self._full(rel)
        with self._errors("list", rel):
            out = self._list_local(full) if self.is_local else self._list_remote(full, rel)
        if out is None:
            if rel == "":
                return True, []
            raise NotFoundError(f"{rel!r} not found", details={"path": rel})
        return out[0], sorted(out[1], key=lambda f: f.path)

    def _list_local(self, full: str) -> tuple[bool, list[StoredFile]] | None:
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(st.st_mode):
            return False, [StoredFile(os.path.basename(full), st.st_size)]
        if not stat.S_ISDIR(st.st_mode):
            return None  # symlinks and special files are never served
        out = []
        # followlinks=False and lstat: a link planted inside the root is not followed or listed.
        for dirpath, _dirs, files in os.walk(full, followlinks=False):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    rel = os.path.relpath(path, full).replace(os.sep, "/")
                    out.append(StoredFile(rel, st.st_size))
        return True, out

    def _list_remote(self, full: str, rel: str) -> tuple[bool, list[StoredFile]] | None:
        below = None
        if self.io is not None:
            with contextlib.suppress(NotImplementedError):
                below = self.io.run(self.io.list_below(full))
        if below or (below is not None and not rel):
            return True, [StoredFile(p, s) for p, s in below if not p.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]
        if self.fs.isfile(full):
            return False, [StoredFile(posixpath.basename(full), int(self.fs.size(full) or 0))]
        if not self.fs.isdir(full):
            return None
        if below is not None:
            return True, []  # an empty folder (a marker): nothing below it, as just listed
        base = self.fs._strip_protocol(full).rstrip("/") + "/"
        out = []
        for path, info in self.fs.find(full, detail=True).items():
            if info.get("type") != "file":
                continue
            rel = self.fs._strip_protocol(path)
            rel = rel[len(base) :] if rel.startswith(base) else posixpath.basename(rel)
            if rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                continue
            out.append(StoredFile(rel, int(info.get("size") or 0)))
        return True, out

    # -- reading -------------------------------------------------------------------------
    def open_read(self, rel: str) -> IO[bytes]:
        """Open a stored file for reading; the caller closes it."""
        rel = _check_rel(rel)
        full = self._full(rel)
        with self._errors("read", rel):
            if not self.is_local:
                if self.fs.isdir(full):
                    raise UserError(f"{rel!r} is a folder, not a file")
                return self.fs.open(full, "rb")
            # O_NOFOLLOW: the last component must not be a link swapped in after the check.
            try:
                fd = os.open(full, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UserError(f"{rel!r} is a symbolic link") from None
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise UserError(f"{rel!r} is a folder, not a file")
            return os.fdopen(fd, "rb")

    # -- writing -------------------------------------------------------------------------
    def write_stream(
        self,
        rel: str,
        chunks: Iterable[bytes],
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        max_bytes: int | None = None,
        digest: bool = True,
    ) -> FileEntry:
        """Stream ``chunks`` into ``rel`` atomically and return what was stored.

        A size or hash mismatch is a :class:`UserError`, more than ``max_bytes`` a
        :class:`PayloadTooLargeError`, a storage failure an :class:`InfraError`; in every
        failure (including an exception raised by ``chunks`` itself, which propagates) the
        temporary file (on an object store: the unfinished upload) is dropped and nothing
        appears under ``rel``. With ``digest=False`` (a caller that has no use for the hash)
        the entry's ``sha256`` is empty.
        """
        rel = _check_rel(rel)
        if expected_sha256 is not None:
            digest = True
            expected_sha256 = expected_sha256.lower()
            if len(expected_sha256) != 64 or not set(expected_sha256) <= _SHA256_HEX:
                raise UserError(f"invalid sha256 {expected_sha256!r} for {rel!r}")
        final = self._full(rel)
        with self._errors("write", rel):
            if self._isdir_full(final):
                raise UserError(f"cannot write {rel!r}: a folder has that name")
            sink = self._sink(final)
        try:
            size, sha = self._pour(sink, rel, chunks, expected_size, max_bytes, digest)
            if expected_size is not None and size != expected_size:
                raise UserError(
                    f"size mismatch for {rel!r}: expected {expected_size} bytes, received {size}",
                    details={"path": rel, "expected": expected_size, "received": size},
                )
            if expected_sha256 is not None and sha != expected_sha256:
                raise UserError(
                    f"sha256 mismatch for {rel!r}: expected {expected_sha256}, received {sha}",
                    details={"path": rel, "expected": expected_sha256, "received": sha},
                )
            with self._errors("write", rel):
                sink.commit()  # only now does anything appear under the final name
        except BaseException:
            sink.abort()
            raise
        return FileEntry(rel, size, sha)

    def _sink(self, final: str) -> Any:
        """Where a write's bytes go until it is checked: a temporary file renamed into place, or
        on S3 / Azure Blob an upload to the final key that is completed only on commit."""
        if self.io is not None:
            return ObjectWriter(self.io, final)
        parent = os.path.dirname(final) if self.is_local else posixpath.dirname(final)
        self._makedirs(parent)
        tmp = (os.path.join if self.is_local else posixpath.join)(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        return LocalSink(tmp, final) if self.is_local else FsspecSink(self.fs, tmp, final)

    def _pour(
        self,
        sink: Any,
        rel: str,
        chunks: Iterable[bytes],
        expected_size: int | None,
        max_bytes: int | None,
        digest: bool = True,
    ) -> tuple[int, str]:
        hasher = hashlib.sha256() if digest else None
        size = 0
        # Only the storage calls are mapped to storage errors: an exception raised by
        # ``chunks`` itself (a client that went away) propagates as it is.
        for chunk in chunks:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise UserError(f"upload of {rel!r} produced {type(chunk).__name__}, not bytes")
            size += len(chunk)
            # Stop early: a client that sends more than announced is cut off, not buffered.
            if expected_size is not None and size > expected_size:
                raise UserError(
                    f"size mismatch for {rel!r}: more than the expected {expected_size} bytes",
                    details={"path": rel, "expected": expected_size},
                )
            if max_bytes is not None and size > max_bytes:
                raise PayloadTooLargeError(f"{rel!r} is larger than {max_bytes} bytes")
            if hasher is not None:
                hasher.update(chunk)
            with self._errors("write", rel):
                sink.write(chunk)
        return size, hasher.hexdigest() if hasher is not None else ""

    def write_many(self, items: list[tuple[str, bytes]]) -> list[FileEntry]:
        """Write several small files, each whole or not at all (``write_stream`` each; on S3 and
        Azure Blob one atomic PUT each, many at once). Hashes are not computed."""
        checked = [(_check_rel(rel), data) for rel, data in items]
        if self.io is None:
            return [self.write_stream(rel, [data], digest=False) for rel, data in checked]
        try:
            self.io.put_many((self._full(rel), data) for rel, data in checked)
        except ItemFailed as failed:
            with self._errors("write", checked[failed.index][0]):
                raise failed.error from None
        return [FileEntry(rel, len(data), "") for rel, data in checked]

    # -- files a runner sends to or reads from the store itself (direct_uploads.py: S3;
    # direct_blobs.py: Azure Blob) ----------------------------------------------------------------
    def _direct(self) -> Any:
        return direct_blobs if direct_blobs.supports(self.io) else direct_uploads

    def begin_direct_upload(self, rel: str, size: int) -> DirectUpload:
        """A multipart upload (S3) or staged blocks (Azure Blob) to ``rel`` whose parts the caller
        sends itself, each signed by ``sign_direct_upload``; on any other store an
        :class:`UnsupportedError` (the caller sends the file through us)."""
        rel = _check_rel(rel)
        final = self._full(rel)
        with self._errors("write", rel):
            if self._isdir_full(final):
                raise UserError(f"cannot write {rel!r}: a folder has that name")
            return self._direct().begin(self.io, final, size)

    def sign_direct_upload(self, rel: str, upload_id: str, numbers: list[int]) -> list[dict[str, Any]]:
        rel = _check_rel(rel)
        with self._errors("write", rel):
            return self._direct().sign(self.io, self._full(rel), upload_id, numbers)

    def complete_direct_upload(self, rel: str, upload_id: str, size: int) -> FileEntry:
        """Publish a direct upload: only now does ``rel`` appear, whole."""
        rel = _check_rel(rel)
        with self._errors("write", rel):
            self._direct().complete(self.io, self._full(rel), upload_id, size)
        return FileEntry(rel, size, "")

    def abort_direct_upload(self, rel: str, upload_id: str) -> None:
        rel = _check_rel(rel)
        with self._errors("write", rel):
            self._direct().abort(self.io, self._full(rel), upload_id)

    def direct_offers(self) -> tuple[bool, bool]:
        """What a runner may do on this store itself: (small files through signed URLs, large
        uploads in parts it sends); told in its run spec, so it never asks where the answer is no."""
        small = direct_blobs.supports(self.io)
        return small, small or isinstance(self.io, S3IO)

    def direct_urls(self, rels: list[str], permission: str) -> list[str]:
        """Azure Blob with an account key: for each file a URL with a SAS that lets its holder
        read (``r``) or write (``w``) that blob only, for a few minutes (``direct_blobs.py``);
        anywhere else an :class:`UnsupportedError`."""
        checked = [_check_rel(rel) for rel in rels]
        with self._errors("sign", checked[0] if checked else ""):
            return direct_blobs.urls(self.io, [self._full(rel) for rel in checked], permission)

    def read_each(self, rels: list[str], limit: int) -> Iterator[bytes]:
        """The bytes of several small files in order, at most ``limit + 1`` of each, each given
        as soon as it is read; on S3 and Azure Blob many are read at once, always ``CONCURRENCY``
        ahead of the caller. A failure is raised after the files before it were given."""
        checked = [_check_rel(rel) for rel in rels]
        if self.io is None:
            for rel in checked:
                with self.open_read(rel) as fh:
                    yield fh.read(limit + 1)
            return
        try:
            yield from self.io.get_stream([self._full(rel) for rel in checked], limit)
        except ItemFailed as failed:
            with self._errors("read", checked[failed.index]):
                raise failed.error from None

    def read_chunks(self, rel: str, start: int = 0) -> tuple[int, Iterator[bytes]]:
        """A stored file's size and its bytes from ``start`` on, in pieces of a megabyte or more;
        on S3 and Azure Blob fetched in ranges, several at once. A missing file or a folder
        raises here, before the first piece (the caller can still answer with an error)."""
        rel = _check_rel(rel)
        if self.io is None:
            fh = self.open_read(rel)
            size = os.fstat(fh.fileno()).st_size if self.is_local else int(self.fs.size(self._full(rel)) or 0)
            fh.seek(min(start, size))
            return size, file_chunks(fh)
        full = self._full(rel)
        with self._errors("read", rel):
            try:
                size = self.io.run(self.io.size(full))
            except IsADirectoryError:
                raise NotFoundError(f"no file {rel!r}: it is a folder", details={"path": rel}) from None
        return size, self._mapped(rel, self.io.read_ranges(full, size, min(start, size)))

    def _mapped(self, rel: str, pieces: Iterator[bytes]) -> Iterator[bytes]:
        with self._errors("read", rel):
            yield from pieces

    def _isdir_full(self, full: str) -> bool:
        return os.path.isdir(full) and not os.path.islink(full) if self.is_local else self.fs.isdir(full)

    def _makedirs(self, full: str) -> None:
        if self.is_local:
            os.makedirs(full, exist_ok=True)
        else:
            self.fs.makedirs(full, exist_ok=True)

    # -- changing ------------------------------------------------------------------------
    def remove(self, rel: str) -> None:
        """Remove a file or a whole folder; a link is removed itself, never its target."""
        rel = _check_rel(rel)
        full = self._full(rel)
        with self._errors("remove", rel):
            if self.is_local:
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
            else:
                if not self.fs.exists(full):
                    raise FileNotFoundError(full)
                self.fs.rm(full, recursive=True)

    def rename(self, src_rel: str, dst_rel: str) -> None:
        """Move a file or folder to a new name; refuses to overwrite an existing one."""
        src_rel, dst_rel = _check_rel(src_rel), _check_rel(dst_rel)
        src, dst = self._full(src_rel), self._full(dst_rel)
        with self._errors("rename", src_rel):
            if not (os.path.lexists(src) if self.is_local else self.fs.exists(src)):
                raise NotFoundError(f"{src_rel!r} not found", details={"path": src_rel})
            if os.path.lexists(dst) if self.is_local else self.fs.exists(dst):
                raise ConflictError(f"cannot rename {src_rel!r}: {dst_rel!r} already exists")
            self._makedirs(os.path.dirname(dst) if self.is_local else posixpath.dirname(dst))
            if self.is_local:
                os.rename(src, dst)
            else:
                self._move_remote(src, dst)

    def publish_dir(self, staging_rel: str, final_rel: str) -> bool:
        """Move a fully written staging folder (or file) to ``final_rel`` in one step.

        Returns False, after deleting the staging copy, when ``final_rel`` already exists:
        content-addressed uploads of the same bytes race harmlessly and the first one wins.
        Atomic on local disk (``os.rename`` refuses a non-empty target folder); on object
        stores the move is per object, serialized within this process.
        """
        staging_rel, final_rel = _check_rel(staging_rel), _check_rel(final_rel)
        src, dst = self._full(staging_rel), self._full(final_rel)
        with self._errors("publish", final_rel):
            if not (os.path.lexists(src) if self.is_local else self.fs.exists(src)):
                raise NotFoundError(f"{staging_rel!r} not found", details={"path": staging_rel})
            if self.is_local:
                return self._publish_local(src, dst, staging_rel)
            with self._publish_lock:
                if self.fs.exists(dst):
                    self.fs.rm(src, recursive=True)
                    return False
                self._makedirs(posixpath.dirname(dst))
                self._move_remote(src, dst)
                return True

    def _publish_local(self, src: str, dst: str, staging_rel: str) -> bool:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            try:
                if os.path.isdir(src):
                    os.rename(src, dst)  # fails with ENOTEMPTY/EEXIST if someone else won
                else:
                    _link_or_replace(src, dst)
                return True
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        self.remove(staging_rel)
        return False

    def _move_remote(self, src: str, dst: str) -> None:
        if not self.fs.isdir(src):
            self.fs.mv(src, dst)
            return
        # Per-file moves: fs.mv of a folder onto an existing folder nests it on some backends.
        base = self.fs._strip_protocol(src).rstrip("/") + "/"
        for path in self.fs.find(src):
            rel = self.fs._strip_protocol(path)[len(base) :]
            target = f"{dst}/{rel}"
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            self.fs.mv(path, target)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(src, recursive=True)

    def sweep_temp_files(self, prefix_rel: str = "", *, older_than_seconds: float = 3600) -> int:
        """Remove temporary files left by writes that crashed; returns how many went."""
        rel = _check_rel(prefix_rel, allow_empty=True)
        full = self._full(rel)
        cutoff = time.time() - older_than_seconds
        removed = 0
        with self._errors("clean", rel):
            if self.is_local:
                for dirpath, _dirs, files in os.walk(full, followlinks=False):
                    for name in files:
                        path = os.path.join(dirpath, name)
                        if name.startswith(TMP_PREFIX) and os.lstat(path).st_mtime < cutoff:
                            os.unlink(path)
                            removed += 1
                return removed
            if not self.fs.isdir(full):
                return 0
            for path in self.fs.find(full):
                if posixpath.basename(path).startswith(TMP_PREFIX):
                    try:
                        stale = self.fs.modified(path).timestamp() < cutoff
                    except (NotImplementedError, AttributeError, ValueError):
                        stale = True  # no timestamps on this backend: the caller chose to sweep
                    if stale:
                        self.fs.rm(path)
                        removed += 1
        return removed
