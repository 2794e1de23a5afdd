"""A null MLflow server for the client's floor: ``python benchmarks/_nullserver.py`` prints its URL,
then answers every request at once with a canned body after reading (and dropping) the request
body. ``PUT /__history`` sets the body ``metrics/get-history`` answers with.

It runs as its own process so that it does not share the client's interpreter lock: what the client
measures against it is the client's own work plus a minimal server, the floor under any server's
figure through that client.
"""

from __future__ import annotations

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUN = {
    "info": {
        "run_id": "floor",
        "run_uuid": "floor",
        "experiment_id": "1",
        "status": "RUNNING",
        "artifact_uri": "mlflow-artifacts:/floor",
        "lifecycle_stage": "active",
    },
    "data": {},
}
RUN_BODY = json.dumps({"run": RUN}).encode()
HISTORY = [b'{"metrics": []}']


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        left = int(self.headers.get("content-length") or 0)
        keep = self.path == "/__history"
        parts = []
        while left > 0:
            block = self.rfile.read(min(left, 1024 * 1024))
            if not block:
                break
            left -= len(block)
            if keep:
                parts.append(block)
        path = self.path.split("?")[0]
        if keep:
            HISTORY[0] = b"".join(parts)
            body = b"{}"
        elif path.endswith("/metrics/get-history"):
            body = HISTORY[0]
        elif path.endswith(("/runs/get", "/runs/create")):
            body = RUN_BODY
        else:
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer


def main() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
