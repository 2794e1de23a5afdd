"""A ``local`` datastore points only inside the roots the admin allowed (storage/local_roots.py),
never at ``/`` or over the server's home, and only the admin right creates one (server/auth.py,
``require_local_datastore_right``). The path is checked again whenever the datastore is opened,
so one stored before (or by an older server) cannot be read through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.config import ShoalSettings
from shoal.errors import UserError
from shoal.server.auth import Permission, Principal
from shoal.services.context import ServiceContext
from shoal.services.workspaces import workspace_id
from shoal.store import resources as resource_rows

from .conftest import Api, error_of
from .test_jobs_api import start_attempt, submitted


def _put(api, name: str, path: str, headers: dict[str, str] | None = None):
    return api.anon.put(
        api.url(f"/datastores/{name}"), json={"type": "local", "path": path}, headers=headers or api.http.headers
    )


def _refused(r, *words: str) -> None:
    assert r.status_code == 403, r.text
    err = error_of(r)
    assert err["code"] == "PERMISSION_DENIED"
    for word in words:
        assert word in err["message"], (word, err["message"])


def test_local_datastores_only_inside_allowed_roots(sqlite_api, tmp_path):
    api = sqlite_api
    home = api.settings.resolved_home()
    root = Path(api.app.state.ctx.local_roots.default)
    assert root == home / "local-datastores" and root.is_dir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "escape").symlink_to(home)  # a link inside the root that leads to the home
    for path, why in (
        ("/", "root '/'"),
        (str(home), "contains the server's own folder"),
        (str(tmp_path), "contains the server's own folder"),
        (str(home / "artifacts"), "inside the server's own folder"),
        (str(root / "escape"), "contains the server's own folder"),
        (str(root / "escape" / "artifacts"), "inside the server's own folder"),
        (f"{root}/../artifacts", "inside the server's own folder"),
        (str(outside), "outside the local datastore roots"),
        ("file:///", "root '/'"),
    ):
        _refused(_put(api, "rootds", path), why)
        assert api.http.get(api.url("/datastores/rootds")).status_code == 404

    (root / "team").mkdir()
    (root / "team" / "a.txt").write_text("hello")
    assert _put(api, "teamds", str(root / "team")).status_code == 200
    r = api.http.get(api.url("/datastores/teamds/files"))
    assert r.status_code == 200 and "a.txt" in r.text

    # `write` is not enough: a local datastore takes the admin right.
    api.app.state.tokens.add("writer-token", Principal("writer", frozenset({Permission.READ, Permission.WRITE})))
    writer = {"Authorization": "Bearer writer-token"}
    _refused(_put(api, "mine", str(root / "team"), headers=writer), "'admin' permission")
    r = api.anon.put(
        api.url("/datastores/blob"),
        json={"type": "azure_blob", "account_name": "a", "container_name": "c"},
        headers=writer,
    )
    assert r.status_code == 200, r.text


def test_a_stored_datastore_over_the_home_is_refused_when_opened(sqlite_api):
    """As if an older server had stored ``{"type": "local", "path": "/"}``: reading through it,
    with the admin token or a job token, is refused."""
    api = sqlite_api
    with api.app.state.ctx.db.write() as session:
        ws_id = workspace_id(session, "default")
        resource_rows.put(session, ws_id, "datastore", "rootds", "local", {"name": "rootds", "path": "/"}, None)
    job = submitted(api, name="reader")["name"]
    tok = start_attempt(api, job)
    for headers in (api.http.headers, tok):
        r = api.anon.get(api.url("/datastores/rootds/files"), params={"path": "etc"}, headers=headers)
        _refused(r, "root '/'")
        r = api.anon.get(api.url("/datastores/rootds/content"), params={"path": "etc/passwd"}, headers=headers)
        assert r.status_code == 403, r.text
    r = api.anon.put(
        api.url("/datastores/rootds/content"),
        params={"path": "tmp/x"},
        content=b"x",
        headers={**api.http.headers, "content-type": "application/octet-stream"},
    )
    assert r.status_code == 403, r.text


def test_configured_roots(shoal_home, tmp_path):
    data = tmp_path / "data"
    (data / "team").mkdir(parents=True)
    api = Api(ShoalSettings(home=shoal_home, local_datastore_roots=f"{data}{os.pathsep}{tmp_path / 'more'}"))
    try:
        assert _put(api, "teamds", str(data / "team")).status_code == 200
        _refused(_put(api, "other", str(Path(api.app.state.ctx.local_roots.default))), "outside")
    finally:
        api.close()
    # A root that is `/`, holds the home, lies inside it, or is relative: the server does not start.
    for bad, why in (
        ("/", "root '/'"),
        (str(tmp_path), "contains the server's own folder"),
        (str(shoal_home / "artifacts"), "inside the server's own folder"),
        ("relative/dir", "absolute"),
    ):
        with pytest.raises(UserError, match="SHOAL_LOCAL_DATASTORE_ROOTS") as info:
            ServiceContext.from_settings(ShoalSettings(home=shoal_home, local_datastore_roots=bad))
        assert why in info.value.message
