"""The router's HTTP/1.1 client to scoring instances: keep-alive connections, one request each.

Why not httpx: the hop to an instance is the router's whole cost, and httpx's async client
spends about 0.5 ms of CPU per request (its request and response models, the connection pool's
locks). An instance is ``<host>:<port>`` (loopback, unless several servers share instances)
speaking plain HTTP/1.1 with a ``Content-Length`` (``runtime/scoring_server.py``), so a
request is one write of ready bytes and a response is a status line, a few headers and a body
of known length: a few tens of µs here.

Connections are kept per address (an instance's port is its identity: a restarted instance has a
new one) and reused last-in first-out. A connection that fails before any byte of the answer
came back, having been idle in the pool, is retried once on a fresh connection (the instance
closed it while it sat idle); other failures are the caller's to map (``UpstreamError``)."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from dataclasses import dataclass

MAX_HEAD = 64 * 1024  # status line and headers of an instance's answer
MAX_IDLE_PER_PORT = 64


class UpstreamError(Exception):
    """The instance could not be reached or broke the connection (not a timeout)."""


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class UpstreamPool:
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = defaultdict(list)

    async def _connect(self, host: str, port: int) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to instance {host}:{port}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    async def post(self, host: str, port: int, path: str, body: bytes, content_type: str) -> Reply:
        """POST ``body``; the caller bounds the time (``asyncio.timeout``)."""
        address = (host, port)
        idle = self._idle[address]
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        while idle:
            conn = idle.pop()
            try:
                return await self._exchange(address, conn, head, body)
            except _StaleError:
                continue  # closed while idle: the next one, or a fresh connection
        conn = await self._connect(host, port)
        try:
            return await self._exchange(address, conn, head, body)
        except _StaleError as exc:
            raise UpstreamError(f"instance {host}:{port} closed the connection: {exc}") from exc

    async def _exchange(self, address: tuple[str, int], conn: _Conn, head: bytes, body: bytes) -> Reply:
        reused_ok = False
        try:
            conn.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.writer.write(body)
            try:
                raw = await conn.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _StaleError("no answer") from exc
                raise UpstreamError("the instance broke off its answer") from exc
            except (ConnectionError, OSError) as exc:
                raise _StaleError(str(exc)) from exc
            except asyncio.LimitOverrunError as exc:
                raise UpstreamError("the instance's answer headers are too large") from exc
            status, length, ctype, keep = _parse_head(raw)
            try:
                data = await conn.reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
                raise UpstreamError("the instance broke off its answer") from exc
            reused_ok = keep
            return Reply(status, ctype, data)
        except BaseException:
            conn.close()
            raise
        finally:
            if reused_ok:
                idle = self._idle[address]
                if len(idle) < MAX_IDLE_PER_PORT:
                    idle.append(conn)
                else:
                    conn.close()

    def forget(self, host: str, port: int) -> None:
        """Close the idle connections to an instance that is gone."""
        for conn in self._idle.pop((host, port), []):
            conn.close()

    async def close(self) -> None:
        for host, port in list(self._idle):
            self.forget(host, port)


class _StaleError(Exception):
    """Nothing came back on the connection: safe to try another one."""


def _parse_head(raw: bytes) -> tuple[int, int, str, bool]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise UpstreamError(f"the instance answered something that is not HTTP: {lines[0][:80]!r}")
    status = int(parts[1])
    length = 0
    ctype = "application/json"
    keep = parts[0] == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "content-type":
            ctype = value.strip()
        elif name == "connection":
            keep = value.strip().lower() == "keep-alive" or (keep and value.strip().lower() != "close")
        elif name == "transfer-encoding" and "chunked" in value.lower():
            raise UpstreamError("the instance answered with a chunked body; scoring answers carry Content-Length")
    return status, length, ctype, keep
