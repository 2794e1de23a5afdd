"""A job's own network namespace: the Shoal server is its only reachable address
(``SHOAL_JOB_NETWORK=server``).

With the host's network, job code reaches every port on the host's loopback (a PostgreSQL with
``trust`` authentication is the server's database to it). In ``server`` mode the runner gives
each job one network namespace of its own, shared by all its ranks (they rendezvous on
``127.0.0.1``), with nothing in it but its loopback and a relay:

    job code ──TCP 127.0.0.1:<server port>──▶ relay (in the job's namespace, netrelay.py)
        ──Unix socket <run dir>/net/server.sock──▶ runner (outside) ──TCP──▶ the Shoal server

The relay runs in a ``bwrap --unshare-net`` of its own (``--die-with-parent``), started before
the first rank; each rank's sandbox enters that namespace with ``nsenter`` (with ``--user`` where
the server is not root: the namespace then belongs to the relay's user namespace). The job's
``MLFLOW_TRACKING_URI`` keeps its port and points at ``127.0.0.1``. No other address is reachable:
no package index, no dataset URLs, no other port of the host. Building environments is not
affected (the runner and sandboxed builds use the host's network).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shoal.compute.netrelay import pipe
from shoal.errors import InfraError

RELAY = Path(__file__).with_name("netrelay.py")
START_TIMEOUT = 30.0


class JobNetwork:
    """The namespace of one job: ``start()`` before its ranks, ``enter()`` in front of each
    rank's bwrap, ``close()`` after."""

    def __init__(self, bwrap: str, folder: Path, port: int, server: Callable[[], tuple[str, int]]) -> None:
        self.bwrap = bwrap
        self.folder = folder
        self.port = port
        self.server = server  # where the server is now (a restarted server may have moved)
        self.socket_path = folder / "server.sock"
        self._listener: socket.socket | None = None
        self._holder: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.nsenter: str | None = None
        self._closed = threading.Event()

    # -- outside: the runner's end ----------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(inner,), daemon=True).start()

    def _forward(self, inner: socket.socket) -> None:
        try:
            outer = socket.create_connection(self.server(), timeout=30)
            outer.settimeout(None)
        except OSError:
            inner.close()
            return
        back = threading.Thread(target=pipe, args=(outer, inner), daemon=True)
        back.start()
        pipe(inner, outer)
        back.join()
        inner.close()
        outer.close()

    # -- the namespace ------------------------------------------------------------------------

    def start(self) -> None:
        # Found on the runner's own PATH, never the job's (its PATH could name a fake nsenter).
        self.nsenter = shutil.which("nsenter")
        if self.nsenter is None:
            raise InfraError("SHOAL_JOB_NETWORK=server needs `nsenter` (util-linux) on the runner's PATH")
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(self.socket_path))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, name="shoal-job-network", daemon=True).start()
        info_read, info_write = os.pipe()
        argv = [
            self.bwrap,
            "--unshare-net",
            "--dev-bind",
            "/",
            "/",
            "--die-with-parent",
            "--info-fd",
            str(info_write),
            "--",
            sys.executable,
            "-I",
            str(RELAY),
            str(self.port),
            str(self.socket_path),
        ]
        try:
            self._holder = subprocess.Popen(
                argv, pass_fds=(info_write,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        finally:
            os.close(info_write)
        try:
            self.pid = self._read_pid(info_read)
            self._wait_listening()
        except Exception:
            self.close()
            raise
        finally:
            os.close(info_read)

    def _read_pid(self, fd: int) -> int:
        data = b""
        deadline = time.monotonic() + START_TIMEOUT
        while b"}" not in data:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise InfraError(f"the job's network namespace did not start: {self._holder_error()}")
            data += chunk
        return int(json.loads(data[: data.index(b"}") + 1])["child-pid"])

    def _wait_listening(self) -> None:
        assert self._holder is not None and self._holder.stdout is not None
        ready, _, _ = select.select([self._holder.stdout], [], [], START_TIMEOUT)
        line = self._holder.stdout.readline() if ready else b""
        if line.strip() != b"listening":
            raise InfraError(f"the job's network relay did not start: {self._holder_error()}")

    def _holder_error(self) -> str:
        if self._holder is None:
            return "not started"
        if self._holder.poll() is None:
            return "no answer"
        err = self._holder.stderr.read().decode(errors="replace") if self._holder.stderr else ""
        return err.strip()[-500:] or f"exit {self._holder.returncode}"

    def enter(self) -> list[str]:
        """The argv prefix that runs a rank's bwrap inside the job's namespace."""
        if self.pid is None or self.nsenter is None:
            raise InfraError("the job's network namespace was not started")
        if os.geteuid() == 0:
            return [self.nsenter, f"--net=/proc/{self.pid}/ns/net", "--"]
        # An unprivileged bwrap made a user namespace too: the network one belongs to it.
        return [self.nsenter, "--user", "--net", "--preserve-credentials", "-t", str(self.pid), "--"]

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.close()
        if self._holder is not None and self._holder.poll() is None:
            self._holder.kill()
            self._holder.wait(timeout=10)
        self.socket_path.unlink(missing_ok=True)
