"""A real server killed with SIGKILL in the middle of a file upload leaves a temporary file (never
the file itself); the next server start removes it (services/storage/cleanup.py)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from shoal.storage.filesystem import TMP_PREFIX

from .conftest import Cli, exited

CHUNK = b"\0" * (1024 * 1024)


def _server(home: Path) -> tuple[str, int, str]:
    info = json.loads((home / "server.json").read_text())
    return info["url"], int(info["pid"]), (home / "token").read_text().strip()


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"server {pid} still alive")


def test_a_killed_upload_leaves_a_temp_file_that_the_next_start_removes(tmp_path):
    home = tmp_path / "home"
    cli = Cli(home)
    cli.env["SHOAL_TEMP_FILE_MAX_AGE"] = "1"  # so the restart below need not wait an hour
    cli("server", "start", "--detach")
    url, pid, token = _server(home)
    blob = home / "artifacts" / "workspaces" / "default" / "datastores" / "workspaceblobstore"
    sent = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(200):
            yield CHUNK
            if i == 4:
                sent.set()
                time.sleep(30)  # the server dies while waiting for the rest

    def upload() -> None:
        try:
            httpx.put(
                f"{url}/api/v1/workspaces/default/datastores/workspaceblobstore/content",
                params={"path": "big.bin"},
                content=body(),
                headers={"Authorization": f"Bearer {token}", "content-type": "application/octet-stream"},
                timeout=60,
            )
        except httpx.HTTPError:
            pass  # the server is gone: that is the point

    writer = threading.Thread(target=upload, daemon=True)
    writer.start()
    try:
        assert sent.wait(30)
        deadline = time.monotonic() + 15  # until some of it is on disk
        while time.monotonic() < deadline and not any(p.stat().st_size for p in blob.glob(f"{TMP_PREFIX}*")):
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        leftovers = list(blob.glob(f"{TMP_PREFIX}*"))
        assert leftovers and leftovers[0].stat().st_size > 0, list(blob.iterdir())
        assert not (blob / "big.bin").exists()

        time.sleep(1.2)  # older than SHOAL_TEMP_FILE_MAX_AGE
        cli("server", "start", "--detach")
        deadline = time.monotonic() + 30
        while any(p.exists() for p in leftovers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(p.exists() for p in leftovers)
        assert not (blob / "big.bin").exists()
    finally:
        cli("server", "stop", check=False)
