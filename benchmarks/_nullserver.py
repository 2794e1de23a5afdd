"""A null MLflow server for the client's floor: ``python benchmarks/_nullserver.py`` prints its URL,
then answers every request at once with a canned body after reading (and dropping) the request
body. ``PUT /__history`` sets the body ``metrics/get-history`` answers with. With ``--uvicorn`` the
same answers come from a bare ASGI app under uvicorn (as Shoal's server runs it): the floor of
any uvicorn-served server, its HTTP layer alone.

It runs as its own process so that it does not share the client's interpreter lock: what the client
measures against it is the client's own work plus a minimal server, the floor under any server's
figure through that client.
"""

from __future__ import annotations

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Its one run. MlflowClient caches artifact repositories by run id: two null servers in one
# client process need two ids (``--run-id``).
RUN_ID = sys.argv[sys.argv.index("--run-id") + 1] if "--run-id" in sys.argv else "floor"
RUN = {
    "info": {
        "run_id": RUN_ID,
        "run_uuid": RUN_ID,
        "experiment_id": "1",
        "status": "RUNNING",
        "artifact_uri": f"mlflow-artifacts:/{RUN_ID}",
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


async def asgi_app(scope: dict, receive: Any, send: Any) -> None:
    """The same answers as an ASGI app: what any uvicorn-served app pays before its own code runs."""
    if scope["type"] != "http":
        return
    keep = scope["path"] == "/__history"
    parts = []
    while True:
        message = await receive()
        if keep:
            parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if keep:
        HISTORY[0] = b"".join(parts)
        body = b"{}"
    elif scope["path"].endswith("/metrics/get-history"):
        body = HISTORY[0]
    elif scope["path"].endswith(("/runs/get", "/runs/create")):
        body = RUN_BODY
    else:
        body = b"{}"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    if "--uvicorn" in sys.argv:
        # uvicorn as Shoal runs it (one worker; uvloop and httptools when installed).
        import uvicorn

        print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        uvicorn.Server(uvicorn.Config(asgi_app, log_level="warning", access_log=False)).run(sockets=[sock])
        return
    sock.close()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
