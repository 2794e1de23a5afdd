"""A real ``shoal server`` process on 127.0.0.1, and a helper to run the real ``shoal`` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOAL = [sys.executable, "-m", "shoal.cli.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.env["SHOAL_HOME"] = str(home)
        self.env["XDG_CONFIG_HOME"] = str(home / "config")  # `shoal configure`'s defaults: this home's only
        self.env["COLUMNS"] = "200"
        # The README's local datastore (examples/datastore/local-data) is inside this allowed root.
        self.env["SHOAL_LOCAL_DATASTORE_ROOTS"] = str(ROOT / "examples" / "datastore")

    def __call__(self, *args: str, check: bool = True, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Result:
        proc = subprocess.run(
            [*SHOAL, *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**self.env, **(env or {})},
            timeout=120,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}")
        return result


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """One background server per test module, stopped at the end."""
    home = tmp_path_factory.mktemp("e2e-home")
    runner = Cli(home)
    runner("server", "start", "--detach")
    try:
        yield runner
    finally:
        runner("server", "stop", check=False)


@pytest.fixture(scope="module")
def jobs_cli(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """A server whose heartbeat timeout is short, so lost runners are noticed quickly.

    A test module may set ``SERVER_ENV = {...}`` for more of the server's (and runners') settings.
    """
    home = tmp_path_factory.mktemp("jobs-home")
    runner = Cli(home)
    runner.env["SHOAL_HEARTBEAT_TIMEOUT"] = "3"
    runner.env.update(getattr(request.module, "SERVER_ENV", {}))
    runner("server", "start", "--detach")
    try:
        yield runner
    finally:
        runner("server", "stop", check=False)


def exited(pid: int) -> bool:
    """No such process, or a zombie: it has exited, and its parent (init, for a detached server)
    has yet to collect it, which took init up to ~2 s on the test machine."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def write_job(folder: Path, body: str, name: str = "job.yml") -> Path:
    import textwrap

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def wait_for(
    cli: Cli, name: str, statuses: tuple[str, ...] = ("Completed", "Failed", "Canceled"), timeout=90.0
) -> dict:
    """The job once its status is one of ``statuses``, as ``shoal job show`` prints it."""
    import json
    import time

    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = _job_over_http(cli, name) or json.loads(cli("job", "show", "-n", name).out)
        if job["status"] in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} still {job.get('status')} after {timeout} s")


def _job_over_http(cli: Cli, name: str) -> dict | None:
    """The body ``shoal job show`` prints (the REST resource, unchanged), read from this process.

    A CLI process per poll costs ~0.4 s of CPU on the test machine, and waits poll every 0.3 s:
    polling over HTTP keeps those cores for the servers and jobs under test. None, and the caller
    runs the CLI, where the CLI would pick a server, token or workspace from anywhere else."""
    import json

    import httpx

    from shoal.client.transport import API_PREFIX

    if any(k in cli.env for k in ("SHOAL_SERVER_URL", "SHOAL_TOKEN", "SHOAL_WORKSPACE")):
        return None
    if (cli.home / "config" / "shoal").exists():  # `shoal configure --defaults` may name a workspace
        return None
    try:
        url = json.loads((cli.home / "server.json").read_text())["url"]
        token = (cli.home / "token").read_text().strip()
        reply = httpx.get(
            f"{url}{API_PREFIX}/workspaces/default/jobs/{name}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    return reply.json() if reply.status_code == 200 else None
