"""Finding, or starting in the background, the local Shoal server of this SHOAL_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shoal.config import ShoalSettings
from shoal.errors import ServerUnavailableError
from shoal.serverfile import read_server_file

START_TIMEOUT = 60.0


def _healthy(url: str) -> bool:
    try:
        # verify only for https: building the default TLS context (the CA bundle) costs ~20 ms of
        # every CLI call, and a plain-http URL never uses it.
        health = httpx.get(f"{url}/api/v1/health", timeout=2.0, verify=url.startswith("https:"))
        return health.status_code == 200
    except httpx.HTTPError:
        return False


def running_server(settings: ShoalSettings) -> str | None:
    """The URL of this home's server when it is up and answering."""
    info = read_server_file(settings.server_file)
    if not info or not isinstance(info.get("url"), str):
        return None
    pid = info.get("pid")
    if isinstance(pid, int) and not _pid_exists(pid):
        return None
    url = str(info["url"])
    return url if _healthy(url) else None


def _pid_exists(pid: int) -> bool:
    if os.name == "posix":  # signal 0 only checks; psutil costs ~15 ms of every CLI call's start-up
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True
    import psutil  # Windows: os.kill(pid, 0) would terminate the process

    return psutil.pid_exists(pid)


def read_token(settings: ShoalSettings) -> str | None:
    if settings.token:
        return settings.token
    try:
        return settings.token_file.read_text().strip() or None
    except OSError:
        return None


def _last_line(log: Path) -> str:
    """The server's last word (why it stopped, such as SHOAL_JOB_ISOLATION=required without bwrap)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 2000))
            lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def start_server(settings: ShoalSettings, *, host: str | None = None, port: int | None = None) -> str:
    """Start a detached server process and wait until it answers; returns its URL."""
    home = settings.resolved_home()
    home.mkdir(parents=True, exist_ok=True)
    lock_path = home / "server.lock"
    # Two CLIs starting at once must not start two servers.
    from filelock import FileLock  # here: only starting a server needs it (~7 ms of every CLI call)

    with FileLock(lock_path):
        url = running_server(settings)
        if url:
            return url
        log = open(home / "server.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "SHOAL_HOME": str(home)}
        cmd = [sys.executable, "-m", "shoal.server.main", "--host", host or settings.host]
        cmd += ["--port", str(port if port is not None else settings.port)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                reason = _last_line(home / "server.log")
                raise ServerUnavailableError(
                    f"the Shoal server exited with code {proc.returncode}"
                    + (f": {reason}" if reason else "")
                    + f"; see {home / 'server.log'}"
                )
            url = running_server(settings)
            if url:
                return url
            time.sleep(0.05)
        proc.terminate()
        raise ServerUnavailableError(f"the Shoal server did not start within {START_TIMEOUT:.0f} s")


def ensure_server(settings: ShoalSettings) -> tuple[str, str | None]:
    """(url, token) of the configured server, starting the local one when none is configured."""
    if settings.server_url:
        return settings.server_url, settings.token
    url = running_server(settings) or start_server(settings)
    return url, read_token(settings)


def stop_server(settings: ShoalSettings, timeout: float = 15.0) -> bool:
    """Stop this home's server; it removes its own server.json when it exits."""
    info = read_server_file(settings.server_file)
    pid = info.get("pid") if info else None
    if not isinstance(pid, int):
        return False
    import psutil  # here, not at the top: every CLI call imports this module

    # psutil, not os.kill: terminate() is SIGTERM on POSIX and TerminateProcess on Windows.
    try:
        psutil.Process(pid).terminate()
    except psutil.NoSuchProcess:
        _forget(settings, pid)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            _forget(settings, pid)
            return True
        time.sleep(0.05)
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass
    _forget(settings, pid)
    return True


def _exited(pid: int) -> bool:
    """Gone, or a zombie: it has exited and only its status is left for its parent to collect.
    A detached server's parent is init, which may collect it seconds later (a test machine's
    did after ~2 s, which every ``shoal server stop`` waited for)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _forget(settings: ShoalSettings, pid: int) -> None:
    """Remove server.json only while it still names this (dead) server, never a newer one's."""
    info = read_server_file(settings.server_file)
    if info and info.get("pid") == pid:
        settings.server_file.unlink(missing_ok=True)
