"""A real server whose artifact root is a small tmpfs that fills up (issue #14, "load and faults").

The server runs in its own mount namespace (``unshare -m``) where a size-limited tmpfs is mounted
on its artifact root, so ENOSPC comes from the kernel, not from a fake. The test reaches that
filesystem through ``/proc/<server pid>/root``, which resolves paths in the server's namespace.
Every upload that does not fit must answer a clear "storage full" error (507), leave no temporary
file, no partial file and no asset row; once space is freed the same upload succeeds with the
server still running (same pid).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoal.storage.filesystem import TMP_PREFIX

from .conftest import SHOAL, Cli, wait_for, write_job

MIB = 1024 * 1024
TMPFS_SIZE = 16 * MIB  # room for every test's 2 MiB once its filler is gone
LEFT_FREE = 1 * MIB  # what the filler leaves free
PAYLOAD = b"\x01" * (2 * MIB)  # does not fit while the filler is there, fits once it is gone


def _mount_allowed(probe: Path) -> str | None:
    """None when ``unshare -m`` + ``mount -t tmpfs`` work here, else why not."""
    if sys.platform != "linux" or not shutil.which("unshare"):
        return "needs Linux with util-linux's unshare"
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1"', "_", str(probe)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return None if proc.returncode == 0 else f"cannot mount a tmpfs in a mount namespace: {proc.stderr.strip()}"


class Server:
    def __init__(self, home: Path, art: Path) -> None:
        info = json.loads((home / "server.json").read_text())
        self.url, self.pid = info["url"], int(info["pid"])
        self.token = (home / "token").read_text().strip()
        self.art = art
        # The server's view of its artifact root: the tmpfs exists only in its mount namespace.
        self.view = Path(f"/proc/{self.pid}/root") / str(art).lstrip("/")
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def temp_files(self) -> list[Path]:
        return [p for p in self.view.rglob("*") if p.name.startswith(TMP_PREFIX)]

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Cli]]:
    base = tmp_path_factory.mktemp("diskfull")
    art = base / "artifacts"
    art.mkdir()
    probe = base / "probe"
    probe.mkdir()
    reason = _mount_allowed(probe)
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the disk-full test: {reason}")
        pytest.skip(reason)
    home = base / "home"
    cli = Cli(home)
    cli.env["SHOAL_ARTIFACT_ROOT"] = str(art)
    # `shoal server start` runs inside the new mount namespace, so the detached server it starts
    # inherits the namespace and its tmpfs; the mount goes away with the last process in it.
    script = f'mount -t tmpfs -o size={TMPFS_SIZE} tmpfs "$1" && shift && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "_", str(art), *SHOAL, "server", "start", "--detach"],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    srv = Server(home, art)
    try:
        yield srv, cli
    finally:
        srv.http.close()
        cli("server", "stop", check=False)


@pytest.fixture
def filled(server: tuple[Server, Cli]) -> Iterator[Path]:
    """A filler file that leaves about 1 MiB free on the tmpfs; the test removes it to recover."""
    srv, _ = server
    filler = srv.view / "filler.bin"
    fs = os.statvfs(srv.view)  # the tmpfs, seen through the server's namespace
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (fs.f_bavail * fs.f_frsize - LEFT_FREE))
    yield filler
    filler.unlink(missing_ok=True)


def _assert_storage_full(status: int, body: dict, *, mlflow: bool = False) -> None:
    assert status == 507, body
    message = body["message"] if mlflow else body["error"]["message"]
    assert "artifact storage is full" in message, body
    if not mlflow:
        assert body["error"]["code"] == "STORAGE_FULL", body


def test_a_datastore_upload_that_does_not_fit_is_refused_cleanly_and_works_once_space_is_freed(server, filled):
    srv, _ = server
    blob = srv.view / "workspaces" / "default" / "datastores" / "workspaceblobstore"
    put = lambda: srv.http.put(  # noqa: E731
        "/api/v1/workspaces/default/datastores/workspaceblobstore/content",
        params={"path": "full/big.bin"},
        content=PAYLOAD,
        headers={"content-type": "application/octet-stream"},
    )
    r = put()
    _assert_storage_full(r.status_code, r.json())
    assert not (blob / "full" / "big.bin").exists()
    assert srv.temp_files() == []

    filled.unlink()  # free the space; the server keeps running
    r = put()
    assert r.status_code in (200, 201), r.text
    assert (blob / "full" / "big.bin").read_bytes() == PAYLOAD
    assert srv.temp_files() == [] and srv.alive()


def test_an_mlflow_artifact_that_does_not_fit_is_refused_in_mlflow_format_and_works_once_space_is_freed(server, filled):
    srv, _ = server
    base = "/api/v1/workspaces/default/mlflow"
    run = srv.http.post(f"{base}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    rel = f"ExperimentRun/dcid.{run['run_id']}/model.bin"
    put = lambda: srv.http.put(f"{base}/api/2.0/mlflow-artifacts/artifacts/{rel}", content=PAYLOAD)  # noqa: E731
    r = put()
    _assert_storage_full(r.status_code, r.json(), mlflow=True)
    listed = srv.http.get(f"{base}/api/2.0/mlflow/artifacts/list", params={"run_id": run["run_id"]}).json()
    assert not listed.get("files"), listed
    assert srv.temp_files() == []

    filled.unlink()
    r = put()
    assert r.status_code == 200, r.text
    assert srv.http.get(f"{base}/api/2.0/mlflow-artifacts/artifacts/{rel}").content == PAYLOAD
    assert srv.temp_files() == [] and srv.alive()


def test_a_model_that_does_not_fit_is_not_registered_and_registers_once_space_is_freed(server, filled, tmp_path):
    srv, cli = server
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(PAYLOAD)
    args = ("model", "create", "--name", "fits-later", "--version", "1", "--path", str(tmp_path / "model"))
    r = cli(*args, check=False)
    assert r.code != 0
    assert "artifact storage is full" in r.err, r.err
    assert "Traceback" not in r.err + r.out
    shown = cli("model", "show", "--name", "fits-later", "--version", "1", check=False)
    assert shown.code != 0 and "not found" in shown.err, shown
    assert srv.temp_files() == []
    staged = [p for p in srv.view.rglob("weights.bin")]
    assert staged == [], staged  # no half-published copy anywhere, upload staging included
    sessions = [p for p in srv.view.rglob(".staging/*")]
    assert sessions == [], sessions  # the failed upload session was dropped at once

    filled.unlink()
    model = json.loads(cli(*args).out)
    assert model["name"] == "fits-later" and model["version"] == "1"
    out = tmp_path / "down"
    cli("model", "download", "--name", "fits-later", "--version", "1", "--download-path", str(out))
    assert [p.read_bytes() == PAYLOAD for p in out.rglob("weights.bin")] == [True]
    assert srv.temp_files() == [] and srv.alive()


def test_a_job_whose_outputs_do_not_fit_fails_with_the_cause_and_runs_once_space_is_freed(server, filled, tmp_path):
    srv, cli = server
    job = write_job(
        tmp_path,
        f"""
        command: >-
          python -c "import pathlib; pathlib.Path('outputs').mkdir(exist_ok=True);
          pathlib.Path('outputs/big.bin').write_bytes(b'1' * {len(PAYLOAD)})"
        environment:
          image: library/python:latest
        """,
    )
    name = cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    failed = wait_for(cli, name)
    assert failed["status"] == "Failed", failed
    assert failed["error"]["code"] == "STORAGE_FULL", failed
    assert "artifact storage is full" in failed["error"]["message"], failed
    assert [p for p in srv.view.rglob("big.bin") if name in str(p)] == []  # no partial output
    assert srv.temp_files() == []

    filled.unlink()
    name = cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(cli, name)
    assert done["status"] == "Completed", done.get("error")
    stored = [p for p in srv.view.rglob("big.bin") if name in str(p)]
    assert [p.stat().st_size for p in stored] == [len(PAYLOAD)], stored
    assert srv.temp_files() == [] and srv.alive()
