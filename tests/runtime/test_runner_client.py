"""The runner's HTTP client (runtime/client.py) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from shoal.runtime import client as runner_client
from shoal.runtime.client import RunnerClient


class _ClosesAfterEachAnswer(http.server.BaseHTTPRequestHandler):
    """Answers with keep-alive, then closes the connection once the answer is sent: what uvicorn
    does to a kept-alive connection that sat idle for longer than its 5 seconds."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ClosesAfterEachAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_kept_alive_connection_the_server_closed_is_replaced_at_once(closing_server, monkeypatch) -> None:
    """A thread that read files from the store for longer than the server keeps an idle
    connection finds it closed: the request goes again at once on a new connection, with no
    pause (a pause for every batch of 256 files of a job's inputs)."""
    pauses: list[float] = []
    monkeypatch.setattr(runner_client.time, "sleep", pauses.append)
    runner = RunnerClient(closing_server, "token", "default", "j", None)
    for _ in range(3):
        assert runner.request("GET", "/anything").json() == {"ok": True}
    assert pauses == []
