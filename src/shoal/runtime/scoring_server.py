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
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 100 * 1024 * 1024  # Azure's managed endpoints take at most 100 MB per request

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the router reuses its connections
    # Headers and body go out in two writes: with Nagle's algorithm on, the second waits for the
    # client's delayed ACK (about 40 ms a request on Linux).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return  # the router counts requests; per-request lines would drown the user's own logs

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path in ("/", "/health"):
            self._send(200, b'"Healthy"')
        elif self.path == "/ready":
            if STATE["ready"]:
                self._send(200, b'"Ready"')
            else:
                self._send(503, b'"init() has not finished"')
        else:
            self._send(404, b'"no such route"')

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.split("?", 1)[0] != "/score":
            self._send(404, b'"no such route"')
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, json.dumps(f"request body over {MAX_BODY} bytes").encode())
            return
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        if not STATE["ready"]:
            self._send(503, b'"init() has not finished"')
            return
        try:
            result = STATE["module"].run(raw)
        except Exception as exc:  # noqa: BLE001 - the user's run() failed: a 500 naming why
            traceback.print_exc()
            self._send(500, json.dumps(f"run() failed: {type(exc).__name__}: {exc}").encode())
            return
        if isinstance(result, bytes):
            self._send(200, result, "application/octet-stream")
            return
        try:
            body = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            self._send(500, json.dumps(f"run() returned a value that is not JSON: {exc}").encode())
            return
        self._send(200, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scoring_server")
    parser.add_argument("--script", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = ThreadingHTTPServer((args.host, 0), Handler)
    server.daemon_threads = True
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
