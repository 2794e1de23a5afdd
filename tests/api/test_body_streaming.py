"""``write_body``: the event loop reads a request body ahead of the writer thread, in batches. A
whole body arrives intact; a body cut short (the client went away) never publishes a file; a
writer that stops early stops the reading too, without hanging."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from starlette.requests import ClientDisconnect, Request

from shoal.errors import UserError
from shoal.server.routes.common import write_body
from shoal.storage.filesystem import TMP_PREFIX, ArtifactStore


def request_with(pieces: list[bytes], *, cut: bool = False) -> tuple[Request, list[int]]:
    """A request whose body arrives in ``pieces`` (then a disconnect when ``cut``)."""
    sent = [0]

    async def receive() -> dict:
        if sent[0] < len(pieces):
            sent[0] += 1
            more = sent[0] < len(pieces) or cut
            return {"type": "http.request", "body": pieces[sent[0] - 1], "more_body": more}
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "PUT", "path": "/", "headers": []}, receive), sent


def test_a_whole_body_is_written_intact(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    pieces = [os.urandom(65536 + i) for i in range(80)]  # ~5 MB in network-sized reads
    request, _ = request_with(pieces)
    entry = anyio.run(write_body, request, lambda chunks: store.write_stream("a/file.bin", chunks))
    assert (tmp_path / "a/file.bin").read_bytes() == b"".join(pieces)
    assert entry.size == sum(map(len, pieces))


def test_a_body_cut_short_publishes_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    request, _ = request_with([os.urandom(65536) for _ in range(40)], cut=True)
    with pytest.raises(ClientDisconnect):
        anyio.run(write_body, request, lambda chunks: store.write_stream("cut.bin", chunks))
    assert not (tmp_path / "cut.bin").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_writer_that_fails_early_stops_the_reading(tmp_path: Path) -> None:
    request, sent = request_with([os.urandom(65536) for _ in range(400)])  # far more than in flight

    def write(chunks) -> None:
        next(iter(chunks))
        raise UserError("refused after the first chunk")

    with pytest.raises(UserError, match="refused"):
        anyio.run(write_body, request, write)
    assert sent[0] < 400
