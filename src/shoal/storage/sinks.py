"""Where a write's bytes wait until they are checked: a temporary file on local disk (fsynced,
then renamed into place) or a temporary object on another fsspec filesystem (then moved). S3 and
Azure Blob use ``objects.ObjectWriter`` instead, which uploads to the final key and completes the
upload only on commit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any

# A large file written to local disk asks the kernel to start writing it out every this many
# bytes, so the fsync before the rename finds little left to do (PostgreSQL's pg_flush_data does
# the same): about half the fsync of a 100 MB upload moves off the critical path.
WRITEBACK_EVERY = 8 * 1024 * 1024
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def start_writeback(fh: IO[bytes], start: int, end: int) -> None:
    """Start (not wait for) writing ``[start, end)`` of a local file to disk. On Linux,
    ``POSIX_FADV_DONTNEED`` starts writeback of the range's dirty pages; elsewhere, nothing."""
    if not hasattr(os, "posix_fadvise"):
        return
    fh.flush()
    with contextlib.suppress(OSError):
        os.posix_fadvise(fh.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)


def file_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    with fh:
        while block := fh.read(1024 * 1024):
            yield block


class LocalSink:
    """A temporary file beside the final one (``O_EXCL``, no links followed), fsynced and
    renamed into place on commit."""

    def __init__(self, tmp: str, final: str) -> None:
        self.tmp, self.final = tmp, final
        self.size = self.flushed = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
        self.fh = os.fdopen(os.open(tmp, flags, 0o644), "wb")

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.size += len(chunk)
        if self.size - self.flushed >= WRITEBACK_EVERY:
            start_writeback(self.fh, self.flushed, self.size)
            self.flushed = self.size

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())  # the rename must not publish a file whose data is lost
        self.fh.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


class FsspecSink:
    """Any other fsspec filesystem: a temporary object, moved to the final name on commit."""

    def __init__(self, fs: Any, tmp: str, final: str) -> None:
        self.fs, self.tmp, self.final = fs, tmp, final
        self.fh = fs.open(tmp, "wb")

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)

    def commit(self) -> None:
        self.fh.close()
        self.fs.mv(self.tmp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # best effort: the write's own error is what counts
            discard = getattr(self.fh, "discard", None)
            if callable(discard):
                discard()  # a multipart upload is aborted rather than completed
            self.fh.close()
        with contextlib.suppress(Exception):
            if self.fs.exists(self.tmp):
                self.fs.rm(self.tmp)
