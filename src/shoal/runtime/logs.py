"""Shipping local log files to the server as they grow."""

from __future__ import annotations

import threading
from pathlib import Path

from shoal.runtime.client import RunnerClient, ServerGone

CHUNK = 1024 * 1024


class LogShipper:
    """Tails files under the run folder and appends new bytes to the job's logs on the server."""

    def __init__(self, client: RunnerClient, root: Path, interval: float = 0.1) -> None:
        self.client = client
        self.root = root
        self.interval = interval
        self._sent: dict[str, int] = {}
        self._files: list[str] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="shoal-log-shipper", daemon=True)

    def watch(self, rel: str) -> Path:
        """Start shipping ``root/rel`` (``rel`` is also its path among the job's logs)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        with self._lock:
            if rel not in self._files:
                self._files.append(rel)
        return path

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()
        self.flush()  # the last bytes: after ``finish_soon``, while the runner uploads outputs

    def ship_soon(self) -> None:
        """Ship what the files hold now, in this shipper's thread, without waiting for its next
        interval: the environment's build log, say, while the job's command starts, not at its
        end, where a short job (a pipeline step) would wait for it."""
        self._wake.set()

    def finish_soon(self) -> None:
        """The job's commands ended: ship what is left now, in this shipper's thread, beside the
        output upload instead of after it (``close`` then waits for it and ships any later line)."""
        self._stop.set()
        self._wake.set()

    def flush(self) -> None:
        with self._lock:
            for rel in list(self._files):
                self._ship(rel)

    def _ship(self, rel: str) -> None:
        path = self.root / rel
        sent = self._sent.get(rel, 0)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        while sent < size:
            with open(path, "rb") as fh:
                fh.seek(sent)
                data = fh.read(min(CHUNK, size - sent))
            if not data:
                break
            try:
                sent = self.client.append_log(rel, sent, data)
            except ServerGone:
                return
            self._sent[rel] = sent

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()
