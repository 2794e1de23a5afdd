"""What a killed server leaves behind is cleaned when the next one starts (and then periodically,
services/storage/cleanup.py): temporary files of writes that never finished and the staging
folders of abandoned uploads; an upload session older than SHOAL_UPLOAD_SESSION_TTL expires."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from starlette.testclient import TestClient

from shoal.config import ShoalSettings
from shoal.storage.filesystem import TMP_PREFIX

from .conftest import Api, error_of

HOUR = 3600.0
DAY = 24 * HOUR


def _manifest(name: str, data: bytes) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    entries = [{"path": name, "size": len(data), "sha256": sha}]
    tree = hashlib.sha256(f"{name}\0{len(data)}\0{sha}\n".encode()).hexdigest()
    return {"name": name, "files": entries, "hash": tree}


def _begin(api, name: str, data: bytes) -> str:
    r = api.http.post(api.url("/datastores/workspaceblobstore/uploads"), json=_manifest(name, data))
    assert r.status_code == 200, r.text
    assert r.json()["upload_id"], r.json()
    return r.json()["upload_id"]


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _backdate_upload(staging: Path, seconds: float) -> None:
    manifest = staging / "manifest.json"
    record = json.loads(manifest.read_text())
    record["created"] = time.time() - seconds
    manifest.write_text(json.dumps(record))


def test_leftovers_of_a_killed_server_are_swept_at_the_next_start(shoal_home):
    settings = ShoalSettings(home=shoal_home)
    api = Api(settings)
    blob = Path(api.app.state.ctx.artifact_root) / "workspaces" / "default" / "datastores" / "workspaceblobstore"
    runs = blob.parent / "workspaceartifactstore" / "ExperimentRun" / "dcid.r1"
    abandoned = _begin(api, "model.bin", b"weights")
    recent = _begin(api, "other.bin", b"other")
    api.close()  # the server is gone; what follows is what a kill -9 leaves on disk

    runs.mkdir(parents=True)
    old_tmp = [blob / f"{TMP_PREFIX}aaaa", runs / f"{TMP_PREFIX}bbbb", blob / ".staging" / abandoned / f"{TMP_PREFIX}c"]
    for path in old_tmp:
        path.write_bytes(b"\0" * 4096)  # half-written content
        _age(path, 2 * HOUR)
    fresh_tmp = runs / f"{TMP_PREFIX}live"  # a write another server may still be making
    fresh_tmp.write_bytes(b"x")
    _backdate_upload(blob / ".staging" / abandoned, 2 * DAY)
    crashed_begin = blob / ".staging" / ("f" * 32)  # a begin killed before its manifest was written
    crashed_begin.mkdir()
    _age(crashed_begin, 2 * DAY)
    kept = runs / "metrics.txt"
    kept.write_text("a finished file")
    _age(kept, 2 * DAY)

    again = Api(settings)
    try:
        with TestClient(again.app):  # runs the start-up work, the sweeper included
            deadline = time.monotonic() + 20
            while again.app.state.sweeper.passes < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert again.app.state.sweeper.passes >= 1
        assert not any(p.exists() for p in old_tmp)
        assert not (blob / ".staging" / abandoned).exists() and not crashed_begin.exists()
        assert fresh_tmp.exists() and kept.read_text() == "a finished file"
        # The recent upload is still there and can be finished.
        assert (blob / ".staging" / recent).is_dir()
        r = again.http.put(
            again.url(f"/datastores/workspaceblobstore/uploads/{recent}/files"),
            params={"path": "other.bin"},
            content=b"other",
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text
        r = again.http.post(again.url(f"/datastores/workspaceblobstore/uploads/{recent}/commit"))
        assert r.status_code == 200, r.text
        r = again.http.put(
            again.url(f"/datastores/workspaceblobstore/uploads/{abandoned}/files"),
            params={"path": "model.bin"},
            content=b"weights",
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 404
    finally:
        again.close()


def test_an_abandoned_upload_session_expires(shoal_home):
    api = Api(ShoalSettings(home=shoal_home, upload_session_ttl=HOUR))
    try:
        upload = _begin(api, "a.bin", b"abc")
        staging = (
            Path(api.app.state.ctx.artifact_root) / "workspaces/default/datastores/workspaceblobstore/.staging" / upload
        )
        _backdate_upload(staging, HOUR + 60)
        r = api.http.put(
            api.url(f"/datastores/workspaceblobstore/uploads/{upload}/files"),
            params={"path": "a.bin"},
            content=b"abc",
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 404 and "expired" in error_of(r)["message"], r.text
        assert not staging.exists()
        r = api.http.post(api.url(f"/datastores/workspaceblobstore/uploads/{upload}/commit"))
        assert r.status_code == 404
        # Starting again works.
        again = _begin(api, "a.bin", b"abc")
        r = api.http.put(
            api.url(f"/datastores/workspaceblobstore/uploads/{again}/files"),
            params={"path": "a.bin"},
            content=b"abc",
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text
    finally:
        api.close()
