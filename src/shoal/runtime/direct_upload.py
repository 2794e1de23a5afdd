"""The runner's side of a direct upload (``storage/direct_uploads.py``): a large output's parts
PUT straight to S3 with the headers the server signed for each, a few at once, each read from the
file as it is sent (no part is held in memory).

A part's signature is a credential for that part for 15 minutes: no message here ever contains
one (errors name the part number and the store's answer only).
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

# Parts are read from the file as they are sent, so more in flight costs connections, not memory:
# as many as s3fs and boto3 send (measured on moto, 1 GB: 29 s with 10 in flight, 61-67 s with 4).
PARTS_IN_FLIGHT = 10
PART_TRIES = 3  # a part is sent again after a dropped connection or a 5xx
TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
BLOCK = 1024 * 1024


class DirectUploadFailed(Exception):
    """The store could not be reached or refused a part: the caller sends the file another way."""


class _Slice:
    """``length`` bytes of an open file from ``start``, read as http.client sends them."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self.fd, self.pos, self.left = fd, start, length

    def read(self, n: int = BLOCK) -> bytes:
        n = min(n if n > 0 else BLOCK, self.left)
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        if not data:
            raise DirectUploadFailed("the file became shorter while it was sent")
        self.pos += len(data)
        self.left -= len(data)
        return data


def _connect(url: str) -> http.client.HTTPConnection:
    """A connection to the store, opened now: a store that does not answer from here (a runner in
    a network namespace, a firewall) is given up at once, not retried part after part."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT, blocksize=BLOCK)
    try:
        conn.connect()
    except OSError as exc:
        conn.close()
        raise DirectUploadFailed(f"the store cannot be reached from here ({type(exc).__name__}: {exc})") from None
    if conn.sock is not None:
        conn.sock.settimeout(TIMEOUT)
    return conn


def _put(conn: http.client.HTTPConnection, url: str, headers: dict[str, str], body: _Slice, length: int) -> None:
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    headers = {**headers, "Content-Length": str(length)}
    conn.request("PUT", target, body=body, headers=headers)  # type: ignore[arg-type]
    response = conn.getresponse()
    answer = response.read()
    if response.status >= 300:
        code = re.search(rb"<Code>([^<]{1,100})</Code>", answer)
        why = f"{response.status} {code.group(1).decode(errors='replace') if code else response.reason}"
        raise _Refused(response.status, why)


class _Refused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


Signer = Callable[[int], tuple[str, dict[str, str]]]  # part number -> its URL and signed headers


def send_parts(source: Path, size: int, part_size: int, count: int, sign: Signer) -> None:
    """PUT part n (bytes ``(n-1)*part_size`` on) as ``sign(n)`` says, ``PARTS_IN_FLIGHT`` at once,
    each on a keep-alive connection of its thread; a part is signed just before it is sent (a
    signature is good for 15 minutes). The first part that fails for good stops the rest and is
    raised as :class:`DirectUploadFailed`."""
    if -(-size // part_size) != count:
        raise DirectUploadFailed(f"{count} parts of {part_size} bytes cannot hold {size} bytes")
    pending = iter(range(count))
    lock = threading.Lock()
    failed: list[Exception] = []
    fd = os.open(source, os.O_RDONLY)

    def one(conn: http.client.HTTPConnection | None, index: int) -> http.client.HTTPConnection | None:
        start = index * part_size
        length = min(part_size, size - start)
        why = ""
        for _ in range(PART_TRIES):
            url, headers = sign(index + 1)
            conn = conn or _connect(url)
            try:
                _put(conn, url, headers, _Slice(fd, start, length), length)
                return conn
            except _Refused as exc:
                why = str(exc)
                if exc.status < 500:  # refused (a full bucket, a wrong clock): no retry helps
                    conn.close()
                    break
            except (OSError, http.client.HTTPException) as exc:
                why = f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = None
        raise DirectUploadFailed(f"part {index + 1} of {count}: {why}")

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        try:
            while not failed:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                try:
                    conn = one(conn, index)
                except Exception as exc:  # noqa: BLE001 - the first one is raised below
                    failed.append(exc)
        finally:
            if conn is not None:
                conn.close()

    try:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(PARTS_IN_FLIGHT, count))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        os.close(fd)
    if failed:
        raise failed[0]
