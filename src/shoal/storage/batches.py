"""Many small files in one request or response: the runner's job outputs and inputs.

A batch is a run of records, each a JSON header line and the file's bytes:

    {"path": "d01/f00001.bin", "size": 4096}\\n<4096 bytes>{"path": ...}\\n...

In a response a record may instead carry ``{"path": ..., "error": {"code", "message"}}`` (and no
bytes): the files before it were sent, the ones after it are not. A file per request costs a
round trip to the server and several to the store; a batch costs one, and the server moves its
files to and from the store many at once (``ArtifactStore.write_many`` / ``read_each``).

The parser is bounded: a header line of at most ``MAX_HEADER`` bytes, at most ``MAX_FILES``
files of at most ``MAX_FILE`` bytes and ``MAX_TOTAL`` bytes in all, every path checked by
``safe_relpath``, no path twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from shoal.errors import PayloadTooLargeError, ShoalError, UserError
from shoal.storage.paths import safe_relpath

MAX_HEADER = 4096
MAX_FILE = 8 * 1024 * 1024  # larger files go one per request, streamed
MAX_FILES = 2000
MAX_TOTAL = 64 * 1024 * 1024
SEND_SIZE = 64 * 1024  # a batch response is sent in pieces of about this size
# What a client (the CLI's downloads, the runner) puts in one batch request: well inside the
# bounds above, so a batch is never refused for its size.
BATCH_FILES = 256
BATCH_BYTES = 8 * 1024 * 1024


def batched(files: list[tuple[Any, Any, int]]) -> list[list[tuple[Any, Any, int]]]:
    """Consecutive groups of at most BATCH_FILES ``(…, …, size)`` items and about BATCH_BYTES bytes."""
    groups: list[list[tuple[Any, Any, int]]] = []
    size = 0
    for item in files:
        if not groups or len(groups[-1]) >= BATCH_FILES or size + item[2] > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item[2]
    return groups


def header(path: str, size: int) -> bytes:
    return json.dumps({"path": path, "size": size}, separators=(",", ":")).encode() + b"\n"


def parse_batch(chunks: Iterable[bytes]) -> list[tuple[str, bytes]]:
    """The ``(path, bytes)`` records of a request body, checked and bounded (see the module)."""
    source = iter(chunks)
    buf = bytearray()
    items: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    total = 0

    def more() -> bool:
        for chunk in source:
            if chunk:
                buf.extend(chunk)
                return True
        return False

    while True:
        while (end := buf.find(b"\n", 0, MAX_HEADER + 1)) < 0:
            if len(buf) > MAX_HEADER:
                raise UserError(f"batch record {len(items) + 1}: header line longer than {MAX_HEADER} bytes")
            if not more():
                if buf:
                    raise UserError(f"batch record {len(items) + 1}: the body ends inside its header line")
                return items
        path, size = _header(bytes(buf[:end]), len(items) + 1)
        del buf[: end + 1]
        if path in seen:
            raise UserError(f"batch record {len(items) + 1}: {path!r} appears twice")
        if len(items) >= MAX_FILES:
            raise PayloadTooLargeError(f"a batch holds at most {MAX_FILES} files")
        total += size
        if total > MAX_TOTAL:
            raise PayloadTooLargeError(f"a batch holds at most {MAX_TOTAL} bytes")
        while len(buf) < size:
            if not more():
                raise UserError(f"batch record {len(items) + 1}: the body ends inside {path!r}")
        items.append((path, bytes(buf[:size])))
        seen.add(path)
        del buf[:size]


def _header(line: bytes, number: int) -> tuple[str, int]:
    try:
        head = json.loads(line)
    except ValueError:
        raise UserError(f"batch record {number}: the header is not JSON") from None
    if not isinstance(head, dict):
        raise UserError(f"batch record {number}: the header must be an object with 'path' and 'size'")
    path, size = head.get("path"), head.get("size")
    if not isinstance(path, str) or not path:
        raise UserError(f"batch record {number}: 'path' must be a non-empty string")
    try:
        path = safe_relpath(path)
    except UserError as exc:
        raise UserError(f"batch record {number}: {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UserError(f"batch record {number}: 'size' must be a non-negative integer")
    if size > MAX_FILE:
        raise PayloadTooLargeError(f"batch record {number}: {path!r} is over {MAX_FILE} bytes; send it on its own")
    return path, size


def read_paths(body: Any) -> list[str]:
    """The ``paths`` of a batch read request, checked."""
    paths = body.get("paths") if isinstance(body, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise UserError("'paths' must be a list of file paths")
    if len(paths) > MAX_FILES:
        raise PayloadTooLargeError(f"a batch read names at most {MAX_FILES} files")
    return [safe_relpath(p) for p in paths]


def records(store: Any, rels: list[str]) -> Iterator[bytes]:
    """A batch response: the files' records as they are read (the store reads many ahead,
    ``ObjectIO.get_stream``), handed on in pieces of about ``SEND_SIZE`` bytes: each piece is one
    hop from the response's worker thread to the server's loop and one socket write, so a
    piece per 4 KB file would cost more than the file. A failure (a missing file, one over
    ``MAX_FILE``, the store) becomes an error record and ends the batch."""
    done = 0
    piece: list[bytes] = []
    size = 0
    try:
        for rel, data in zip(rels, store.read_each(rels, MAX_FILE), strict=False):
            if len(data) > MAX_FILE:
                message = f"{rel!r} is over {MAX_FILE} bytes; read it on its own"
                piece.append(_error(rel, "PAYLOAD_TOO_LARGE", message))
                break
            done += 1
            piece += (header(rel, len(data)), data)
            size += len(data)
            if size >= SEND_SIZE:
                yield b"".join(piece)
                piece, size = [], 0
    except ShoalError as exc:
        path = (exc.details or {}).get("path") or (rels[done] if done < len(rels) else rels[-1])
        piece.append(_error(str(path), exc.code, exc.message))
    if piece:
        yield b"".join(piece)


def _error(path: str, code: str, message: str) -> bytes:
    return json.dumps({"path": path, "error": {"code": code, "message": message}}).encode() + b"\n"
