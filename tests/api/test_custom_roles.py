"""Custom roles (Azure-style actions and not-actions, defined by an admin, assigned per workspace)
and reading the audit log as a workspace's Owner."""

from __future__ import annotations

import time
from typing import Any

from starlette.testclient import TestClient

from shoal.client.ml_client import MLClient
from shoal.config import ShoalSettings
from shoal.services.access import users as user_service
from shoal.services.access.actions import NAMESPACE, route_action
from shoal.services.access.job_attempts import attempt_grant
from shoal.services.access.roles import Permission

from .conftest import Api, error_of
from .test_users_roles_audit import make_user

ML = NAMESPACE + "/workspaces"


def _put_role(api: Api, name: str, headers: dict | None = None, **body: Any) -> Any:
    client = api.http if headers is None else api.anon
    return client.put(f"/api/v1/roles/{name}", json=body, headers=headers or {})


def test_route_actions_are_azures_names():
    """The action of a request, as custom roles' patterns see it."""
    ws = "/api/v1/workspaces/{workspace}"
    cases = [
        ((ws + "/jobs", "GET", Permission.READ, {}), f"{ML}/jobs/read"),
        ((ws + "/jobs", "POST", Permission.WRITE, {}), f"{ML}/jobs/write"),
        ((ws + "/jobs/{name}/cancel", "POST", Permission.WRITE, {}), f"{ML}/jobs/cancel/action"),
        (
            (ws + "/computes/{name}/{action}", "POST", Permission.COMPUTE, {"action": "start"}),
            f"{ML}/computes/start/action",
        ),
        ((ws + "/computes/{name}", "DELETE", Permission.COMPUTE, {}), f"{ML}/computes/delete"),
        ((ws + "/datastores/{name}", "GET", Permission.SECRETS, {}), f"{ML}/datastores/listsecrets/action"),
        ((ws + "/models/{name}/versions/{version}", "PUT", Permission.WRITE, {}), f"{ML}/models/write"),
        ((ws + "/mlflow/api/2.0/mlflow/runs/log-metric", "POST", Permission.TRACK, {}), f"{ML}/experiments/write"),
        ((ws + "/mlflow/api/2.0/mlflow/runs/search", "POST", Permission.READ, {}), f"{ML}/experiments/read"),
        (
            (ws + "/mlflow/api/2.0/mlflow/registered-models/delete", "DELETE", Permission.WRITE, {}),
            f"{ML}/models/delete",
        ),
        ((ws, "PATCH", Permission.MANAGE, {}), f"{ML}/write"),
        # Never grantable by a custom role: roles, audit, server-wide routes.
        ((ws + "/role-assignments/{user}", "PUT", Permission.ROLES, {}), None),
        ((ws + "/audit", "GET", Permission.AUDIT, {}), None),
        (("/api/v1/users", "POST", Permission.ADMIN, {}), None),
    ]
    assert [route_action(*args) for args, _ in cases] == [want for _, want in cases]


def test_custom_roles_allow_what_their_actions_match_and_nothing_else(api, shoal_home, database_url):
    """On SQLite and PostgreSQL: define, assign, use, change, and delete custom roles."""
    r = _put_role(api, "Model Reader", actions=[f"{ML}/models/read"], description="read models only")
    assert r.status_code == 201, r.text
    assert r.json()["actions"] == [f"{ML}/models/read"] and r.json()["type"] == "custom"
    r = _put_role(
        api,
        "No Compute",
        actions=["*"],
        not_actions=[f"{ML}/computes/*", f"{ML}/datastores/listsecrets/action"],
    )
    assert r.status_code == 201, r.text
    api.http.put("/api/v1/workspaces/other", json={})
    mia = make_user(api, "mia", "model reader")  # names are case-insensitive, as Azure's
    nico = make_user(api, "nico", "No Compute")
    n = iter(range(1000))

    def status(headers: dict, method: str, path: str, **kw: Any) -> int:
        return api.anon.request(method, path, headers=headers, **kw).status_code

    checks = {
        "read models": ("GET", api.url("/models"), {}),
        "read jobs": ("GET", api.url("/jobs"), {}),
        "write a model": ("PUT", api.url(f"/models/m{next(n)}/versions/1"), {"json": {"path": "https://e.com/m"}}),
        "log to MLflow": (
            "POST",
            api.url("/mlflow/api/2.0/mlflow/experiments/create"),
            {"json": {"name": "e-custom"}},
        ),
        "list computes": ("GET", api.url("/computes"), {}),
        "create a compute": ("PUT", api.url("/computes/c1"), {"json": {"type": "amlcompute"}}),
        "read datastore secrets": (
            "GET",
            api.url("/datastores/workspaceblobstore"),
            {"params": {"include_secrets": "true"}},
        ),
        "assign a role": ("PUT", "/api/v1/workspaces/default/role-assignments/mia", {"json": {"role": "Owner"}}),
        "read the workspace audit": ("GET", "/api/v1/workspaces/default/audit", {}),
        "read another workspace": ("GET", api.url("/models", "other"), {}),
        "create a workspace": ("PUT", "/api/v1/workspaces/ws-new", {"json": {}}),
    }
    expected = {  # mia (Model Reader), nico (everything but compute and secrets)
        "read models": [200, 200],
        "read jobs": [403, 200],
        "write a model": [403, 200],
        "log to MLflow": [403, 200],
        "list computes": [403, 403],
        "create a compute": [403, 403],
        "read datastore secrets": [403, 403],
        "assign a role": [403, 403],
        "read the workspace audit": [403, 403],
        "read another workspace": [403, 403],
        "create a workspace": [403, 403],
    }
    got = {k: [status(h, m, p, **kw) for h in (mia, nico)] for k, (m, p, kw) in checks.items()}
    assert got == expected
    r = api.anon.get(api.url("/jobs"), headers=mia)
    assert f"no custom role of it allows '{ML}/jobs/read'" in error_of(r)["message"]
    assert error_of(r)["details"]["action"] == f"{ML}/jobs/read"
    # A user with only a custom role sees the workspace it holds it in.
    assert [w["name"] for w in api.anon.get("/api/v1/workspaces", headers=mia).json()["value"]] == ["default"]

    # Only an admin defines roles; bad definitions are refused naming what is wrong, and store nothing.
    assert _put_role(api, "Mine", nico, actions=["*"]).status_code == 403
    bad = [
        ({"actions": []}, "actions must list at least one action"),
        ({"actions": ["Microsoft.Authorization/roleAssignments/write"]}, "is not a Machine Learning action"),
        ({"actions": [f"{ML}/jobs/read; DROP"]}, "invalid action pattern"),
        ({"actions": "jobs"}, "actions must be a list"),
        ({"actions": ["*"], "permissions": ["admin"]}, "unknown role fields: permissions"),
    ]
    for body, message in bad:
        r = _put_role(api, "Broken", **body)
        assert r.status_code == 400 and message in error_of(r)["message"], (body, r.text)
    r = _put_role(api, "owner", actions=["*"])
    assert r.status_code == 400 and "built-in role" in error_of(r)["message"]
    r = api.http.put("/api/v1/workspaces/default/role-assignments/mia", json={"role": "Broken"})
    assert r.status_code == 400 and "'No Compute'" in error_of(r)["message"]
    assert [x["name"] for x in api.http.get("/api/v1/roles").json()["value"]][-2:] == ["Model Reader", "No Compute"]

    # A change applies from the next request.
    r = _put_role(api, "Model Reader", actions=[f"{ML}/models/*", f"{ML}/jobs/read"])
    assert r.status_code == 200, r.text
    assert status(mia, "GET", api.url("/jobs")) == 200
    assert status(mia, "PUT", api.url("/models/mine/versions/1"), json={"path": "https://e.com/m"}) == 200

    # A role still held cannot be deleted; once no one holds it, it can, and its holders lose it.
    r = api.http.delete("/api/v1/roles/Model Reader")
    assert r.status_code == 409 and "mia in default" in error_of(r)["message"]
    assert api.http.delete("/api/v1/roles/Reader").status_code == 400
    assert api.anon.delete("/api/v1/roles/Model Reader", headers=nico).status_code == 403

    # Definitions survive a restart (the database, not the server's memory).
    again = Api(ShoalSettings(home=shoal_home, database_url=database_url))
    try:
        shown = again.http.get("/api/v1/roles/no compute").json()
        assert shown["name"] == "No Compute" and shown["not_actions"][0] == f"{ML}/computes/*"
        assert again.anon.get(again.url("/jobs"), headers=nico).status_code == 200
    finally:
        again.close()
    api.http.delete("/api/v1/workspaces/default/role-assignments/mia")
    assert api.http.delete("/api/v1/roles/Model Reader").status_code == 204
    assert api.http.get("/api/v1/roles/Model Reader").status_code == 404
    assert status(mia, "GET", api.url("/models")) == 403


def test_owners_read_their_own_workspaces_audit(sqlite_api):
    api = sqlite_api
    api.http.put("/api/v1/workspaces/other", json={})
    olga = make_user(api, "olga", "Owner")
    make_user(api, "olga2", "Owner", workspace="other")
    carl = make_user(api, "carl", "Contributor")
    api.anon.put(api.url("/models/a/versions/1"), headers=carl, json={"path": "https://e.com/m"})
    api.http.put(api.url("/models/b/versions/1", "other"), json={"path": "https://e.com/m"})

    # A record is queued as its request ends and written in batches: on a loaded machine the
    # last write's may land a moment after its response, so the read is tried for a while.
    deadline = time.monotonic() + 10
    while True:
        r = api.anon.get("/api/v1/workspaces/default/audit", headers=olga)
        assert r.status_code == 200, r.text
        records = r.json()["value"]
        if any(x["actor"] == "carl" for x in records) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert records and {x["workspace"] for x in records} == {"default"}
    assert any(x["actor"] == "carl" and x["path"].endswith("/models/a/versions/1") for x in records)
    # Not another workspace's, nor the whole log; a Contributor none.
    r = api.anon.get("/api/v1/workspaces/other/audit", headers=olga)
    assert r.status_code == 403 and "'audit' permission in workspace 'other'" in error_of(r)["message"]
    assert api.anon.get("/api/v1/audit", headers=olga).status_code == 403
    assert api.anon.get("/api/v1/workspaces/default/audit", headers=carl).status_code == 403
    # The admin reads every workspace's; filters apply as on /audit.
    everything = api.http.get("/api/v1/audit", params={"max_results": 1000}).json()["value"]
    assert {"default", "other"} <= {x["workspace"] for x in everything}
    r = api.anon.get("/api/v1/workspaces/default/audit", headers=olga, params={"user": "carl"})
    assert {x["actor"] for x in r.json()["value"]} == {"carl"}
    # The SDK (and `shoal audit list --workspace`) goes to the workspace's route.
    token = olga["Authorization"].split()[1]
    ml = MLClient(http_client=TestClient(api.app), token=token, base_url="http://testserver")
    try:
        found = list(ml.access.list_audit(workspace="default", limit=500))
        assert found and {x["workspace"] for x in found} == {"default"}
    finally:
        ml.close()


def test_a_job_of_a_custom_role_holder_gets_only_what_the_role_allows(shoal_home):
    """A job token carries its submitter's custom role too: a role that submits jobs gives its
    jobs read and track (narrowed to the job, as always); a role submitted for (a user whose
    role changed since) gives read where it reads jobs and track where it writes experiments."""
    app_api = Api(ShoalSettings(home=shoal_home))
    try:
        _put_role(app_api, "Submitter", actions=[f"{ML}/jobs/*", f"{ML}/environments/read"])
        _put_role(app_api, "Viewer", actions=[f"{ML}/jobs/read"])
        _put_role(app_api, "Logger", actions=[f"{ML}/jobs/read", f"{ML}/experiments/write"])
        sam = make_user(app_api, "sam", "Submitter")
        viewer = make_user(app_api, "vic", "Viewer")
        make_user(app_api, "lou", "Logger")
        body = {"command": "echo hi", "environment": {"image": "python:3.11"}}
        assert app_api.anon.post(app_api.url("/jobs"), json=body, headers=viewer).status_code == 403
        r = app_api.anon.post(app_api.url("/jobs"), json=body, headers=sam)
        assert r.status_code in (200, 201), r.text
        ctx = app_api.app.state.ctx
        grant = attempt_grant(ctx, "default", r.json()["name"], 1)
        assert grant is not None and set(grant.submitter_permissions) == {Permission.READ, Permission.TRACK}
        for user, want in (("vic", {Permission.READ}), ("lou", {Permission.READ, Permission.TRACK})):
            job = app_api.http.post(app_api.url("/jobs"), json=body).json()["name"]
            user_service.record_submitter(ctx, "default", job, user)
            grant = attempt_grant(ctx, "default", job, 1)
            assert grant is not None and set(grant.submitter_permissions) == want, user
    finally:
        app_api.close()


def test_any_signed_in_user_lists_the_roles(sqlite_api):
    rita = make_user(sqlite_api, "rita", "Reader")
    names = [x["name"] for x in sqlite_api.anon.get("/api/v1/roles", headers=rita).json()["value"]]
    assert names[:5] == ["Owner", "Contributor", "Reader", "AzureML Data Scientist", "AzureML Compute Operator"]
