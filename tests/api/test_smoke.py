"""The API answers on both stores: health is public, everything else needs the token."""

from __future__ import annotations


def test_health_is_public_and_reports_versions(api):
    r = api.anon.get("/api/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["api_version"] == "v1"


def test_default_workspace_and_builtin_datastores_exist(api):
    assert api.ml.workspaces.get().name == "default"
    names = {d.name: d for d in api.ml.datastores.list()}
    assert set(names) == {"workspaceblobstore", "workspaceartifactstore"}
    assert names["workspaceblobstore"].is_default
    assert api.ml.datastores.get_default().name == "workspaceblobstore"
