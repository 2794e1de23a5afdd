"""Run as a script (``python -I netrelay.py PORT SOCKET``) inside a job's own network namespace:
listen on that namespace's ``127.0.0.1:PORT`` and pipe each connection to the Unix socket
``SOCKET``, which the job's runner serves outside and forwards to the Shoal server. Standard
library only: it runs on the runner's interpreter with ``-I`` and imports nothing of Shoal's.
Prints ``listening`` once it accepts connections."""

from __future__ import annotations

import socket
import sys
import threading


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction of a connection until it ends, then half-close both sides (also used by
    ``job_network``: this file runs alone in the relay's sandbox, so it imports only the stdlib)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _serve(client: socket.socket, target: str) -> None:
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(target)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    back.start()
    pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main(argv: list[str]) -> int:
    port, target = int(argv[1]), argv[2]
    server = socket.socket(socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    print("listening", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve, args=(client, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
