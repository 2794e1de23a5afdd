"""One instance of an online deployment: the user's scoring script behind a small HTTP server.

Run as a *file* by the deployment's own interpreter (``python scoring_server.py …``), which has
none of Shoal's packages: this module uses the standard library only, so a deployment's
environment needs nothing beyond what its score.py imports (see docs/endpoints.md for why this,
not azureml-inference-server-http).

The contract is Azure ML's: ``init()`` once at start, ``run(raw_data)`` per request with the
request body as text, the answer JSON-encoded. ``AZUREML_MODEL_DIR`` is set by the supervisor.

Routes: ``GET /`` (liveness: the process answers), ``GET /ready`` (readiness: 200 once init()
returned), ``POST /score``. The bound port is written to ``--port-file`` as soon as the socket
listens, so the supervisor never races for a port.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import socket
import socketserver
import sys
import threading
import traceback
from typing import Any

MAX_BODY = 100 * 1024 * 1024  # Azure's managed endpoints take at most 100 MB per request
MAX_LINE = 65536  # a request line or a header line
MAX_HEADERS = 100

STATE: dict[str, Any] = {"ready": False, "module": None}


def load_script(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("score", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the scoring script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["score"] = module
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise AttributeError(f"the scoring script {path} defines no {name}() function")
    return module


class Handler(socketserver.BaseRequestHandler):
    """HTTP/1.1 with keep-alive, parsed by hand: the stdlib's BaseHTTPRequestHandler parses
    headers with the email package, which costs more CPU than a small model's predict(). The
    router (and the probes) send a request line, a few headers and a Content-Length body; this
    reads exactly that, answers with one write, and keeps the connection for the next request."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        # Headers and body go out in one write; Nagle's algorithm would still delay a small
        # answer behind the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        try:
            while self._one(sock, reader):
                pass
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            reader.close()

    def _one(self, sock: socket.socket, reader: Any) -> bool:
        """Serve one request; False when the connection is to close."""
        line = reader.readline(MAX_LINE + 1)
        if not line:
            return False
        parts = line.split()
        if len(parts) != 3 or len(line) > MAX_LINE:
            _send(sock, 400, b'"bad request line"', keep=False)
            return False
        method, path, version = parts[0], parts[1].split(b"?", 1)[0], parts[2]
        keep = version == b"HTTP/1.1"
        length = 0
        for _ in range(MAX_HEADERS + 1):
            header = reader.readline(MAX_LINE + 1)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    _send(sock, 400, b'"bad Content-Length"', keep=False)
                    return False
            elif name == b"connection":
                token = value.strip().lower()
                keep = token == b"keep-alive" or (keep and token != b"close")
            elif name == b"transfer-encoding":
                _send(sock, 411, b'"send a Content-Length, not a chunked body"', keep=False)
                return False
        else:
            _send(sock, 431, b'"too many header lines"', keep=False)
            return False
        if length > MAX_BODY or length < 0:
            _send(sock, 413, json.dumps(f"request body over {MAX_BODY} bytes").encode(), keep=False)
            return False
        raw = reader.read(length) if length else b""
        if len(raw) < length:
            return False
        if method == b"GET":
            if path in (b"/", b"/health"):
                _send(sock, 200, b'"Healthy"', keep)
            elif path == b"/ready":
                if STATE["ready"]:
                    _send(sock, 200, b'"Ready"', keep)
                else:
                    _send(sock, 503, b'"init() has not finished"', keep)
            else:
                _send(sock, 404, b'"no such route"', keep)
        elif method == b"POST" and path == b"/score":
            status, body, ctype = _score(raw)
            _send(sock, status, body, keep, ctype)
        else:
            _send(sock, 404, b'"no such route"', keep)
        return keep


def _score(raw: bytes) -> tuple[int, bytes, bytes]:
    if not STATE["ready"]:
        return 503, b'"init() has not finished"', JSON
    try:
        result = STATE["module"].run(raw.decode("utf-8", errors="replace"))
    except Exception as exc:  # noqa: BLE001 - the user's run() failed: a 500 naming why
        traceback.print_exc()
        return 500, json.dumps(f"run() failed: {type(exc).__name__}: {exc}").encode(), JSON
    if isinstance(result, bytes):
        return 200, result, b"application/octet-stream"
    try:
        return 200, json.dumps(result).encode(), JSON
    except (TypeError, ValueError) as exc:
        return 500, json.dumps(f"run() returned a value that is not JSON: {exc}").encode(), JSON


JSON = b"application/json"
REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    411: b"Length Required",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def _send(sock: socket.socket, status: int, body: bytes, keep: bool, ctype: bytes = JSON) -> None:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        REASONS.get(status, b"Status"),
        ctype,
        len(body),
        b"" if keep else b"Connection: close\r\n",
    )
    sock.sendall(head + body if len(body) < 65536 else head)
    if len(body) >= 65536:
        sock.sendall(body)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scoring_server")
    parser.add_argument("--script", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = Server((args.host, 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    print(f"scoring server: pid {os.getpid()}, port {server.server_address[1]}; calling init()", flush=True)
    script_dir = os.path.dirname(os.path.abspath(args.script))
    sys.path.insert(0, script_dir)
    try:
        module = load_script(args.script)
        module.init()
    except BaseException:  # noqa: BLE001 - any failure of init() ends the instance, with its traceback
        traceback.print_exc()
        print("scoring server: init() failed", flush=True)
        return 1
    STATE["module"] = module
    STATE["ready"] = True
    print("scoring server: init() done; ready", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
