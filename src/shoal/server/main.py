"""Running the server process: ``python -m shoal.server.main`` or ``shoal server start``.

The process binds its socket itself (port 0 picks a free one), writes ``server.json`` under
SHOAL_HOME with its pid and URL once it answers, and removes the file when it stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from shoal.config import ShoalSettings, load_settings
from shoal.errors import ShoalError
from shoal.serverfile import read_server_file, write_server_file


def serve(settings: ShoalSettings, host: str, port: int) -> None:
    import uvicorn

    from shoal.server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # azure-core logs every request and response it sends at INFO (headers included): on an
    # Azure Blob datastore that is two log lines per file moved, a tenth of the server's time
    # when a job reads or writes many small files. Its warnings and errors still come through.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    home = settings.resolved_home()
    home.mkdir(parents=True, exist_ok=True)
    # The home holds the admin token, the keys and (SQLite) the database: the server's user only.
    home.chmod(0o700)
    # One server per SHOAL_HOME, for the server's whole life: two dispatchers on one store would
    # start jobs twice and break compute capacity.
    running_lock = FileLock(home / "server.running", timeout=0)  # held until serve() returns
    try:
        running_lock.acquire()
    except Timeout:
        print(f"another Shoal server is running on SHOAL_HOME={home}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Uvicorn serving a socket it did not bind leaves Nagle on (the uvicorn #3149 path): every
    # response then waits ~44 ms for a delayed ACK. Accepted sockets inherit this option.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound_port = _bind(sock, host, port, home / "server.port")
    # Runners call back on this URL; a wildcard bind is reached through loopback.
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{client_host}:{bound_port}"
    # The address it serves on decides team mode (ShoalSettings.is_team_mode) unless set.
    settings = settings.model_copy(update={"host": host})
    try:
        app = create_app(settings, server_url=url, heartbeat_timeout=settings.heartbeat_timeout)
    except ShoalError as exc:  # a bad setting (SHOAL_LOCAL_DATASTORE_ROOTS): one line, not a traceback
        print(f"Shoal server cannot start: {exc.message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    _private_files(settings)
    server_file = settings.server_file

    # One worker on purpose: multi-worker uvicorn never sets TCP_NODELAY (uvicorn #3149).
    config = uvicorn.Config(app, log_level="warning", access_log=False, workers=1)
    server = uvicorn.Server(config)

    original_startup = server.startup

    async def startup(sockets=None):  # type: ignore[no-untyped-def]
        await original_startup(sockets=sockets)
        write_server_file(server_file, pid=os.getpid(), url=url)
        print(f"Shoal server listening on {url}", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    finally:
        current = read_server_file(server_file)
        if current and current.get("pid") == os.getpid():
            server_file.unlink(missing_ok=True)


def _private_files(settings: ShoalSettings) -> None:
    """The SQLite database (and its journal files) readable by the server's user only."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        for path in (db, *db.parent.glob(db.name + "-*")):
            try:
                path.chmod(0o600)
            except OSError:
                pass


def _bind(sock: socket.socket, host: str, port: int, remembered: os.PathLike[str] | str) -> int:
    """Bind ``port``; port 0 first tries the port this home's server had last time.

    Jobs' scripts hold the server's URL (``MLFLOW_TRACKING_URI``) for their whole run: a server
    restarted on the same port is found again by them, not only by their runners."""
    path = Path(remembered)
    if port == 0:
        try:
            last = int(path.read_text().strip())
            sock.bind((host, last))
        except (OSError, ValueError):
            sock.bind((host, 0))
    else:
        sock.bind((host, port))
    bound = int(sock.getsockname()[1])
    try:
        path.write_text(str(bound))
    except OSError:
        pass
    return bound


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shoal.server.main")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    settings = load_settings()
    serve(settings, args.host or settings.host, args.port if args.port is not None else settings.port)


if __name__ == "__main__":
    main(sys.argv[1:])
