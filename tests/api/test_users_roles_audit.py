"""Team mode: users and their API tokens, Azure's workspace roles, job tokens that carry their
submitter's role, the audit log, and what a team server hides from callers without a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from shoal.config import ShoalSettings
from shoal.server.app import create_app
from shoal.store.tables import ApiTokenRow

from .conftest import Api, error_of

ENV = {"image": "python:3.11"}
ROLES = {
    "rita": "Reader",
    "dana": "AzureML Data Scientist",
    "otto": "AzureML Compute Operator",
    "carl": "Contributor",
    "olga": "Owner",
}


def make_user(api: Api, name: str, role: str | None = None, workspace: str = "default", **spec: Any) -> dict:
    """A user with a role in ``workspace`` and a token; the Authorization header for it."""
    r = api.http.post("/api/v1/users", json={"name": name, **spec})
    assert r.status_code == 201, r.text
    if role:
        r = api.http.put(f"/api/v1/workspaces/{workspace}/role-assignments/{name}", json={"role": role})
        assert r.status_code == 200, r.text
    r = api.http.post(f"/api/v1/users/{name}/tokens", json={"name": "test"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def team(api: Api) -> tuple[Api, dict[str, dict]]:
    """A user per role in ``default``, on SQLite and on PostgreSQL."""
    return api, {name: make_user(api, name, role) for name, role in ROLES.items()}


@pytest.fixture
def sqlite_team(sqlite_api: Api) -> tuple[Api, dict[str, dict]]:
    """The same on SQLite only, where the database adds nothing to what a test shows."""
    return sqlite_api, {name: make_user(sqlite_api, name, role) for name, role in ROLES.items()}


def _ml(api: Api, headers: dict, endpoint: str, body: dict) -> int:
    return api.anon.post(api.url(f"/mlflow/api/2.0/mlflow/{endpoint}"), headers=headers, json=body).status_code


def test_role_matrix_follows_azure(sqlite_team):
    """Each built-in role against one action per permission, as Azure's roles define them."""
    api, users = sqlite_team
    api.http.put("/api/v1/workspaces/other", json={})
    n = iter(range(1000))
    actions = {
        "read models": lambda h: api.anon.get(api.url("/models"), headers=h).status_code,
        "write a model": lambda h: (
            api.anon.put(
                api.url(f"/models/m{next(n)}/versions/1"), headers=h, json={"path": "https://e.com/m"}
            ).status_code
        ),
        "submit a job": lambda h: (
            api.anon.post(api.url("/jobs"), headers=h, json={"command": "echo hi", "environment": ENV}).status_code
        ),
        "log to MLflow": lambda h: _ml(api, h, "experiments/create", {"name": f"e{next(n)}"}),
        "list computes": lambda h: api.anon.get(api.url("/computes"), headers=h).status_code,
        "create a compute": lambda h: (
            api.anon.put(
                api.url(f"/computes/c{next(n)}"), headers=h, json={"type": "amlcompute", "max_instances": 1}
            ).status_code
        ),
        "read datastore secrets": lambda h: (
            api.anon.get(
                api.url("/datastores/workspaceblobstore"), headers=h, params={"include_secrets": "true"}
            ).status_code
        ),
        "change the workspace": lambda h: (
            api.anon.patch("/api/v1/workspaces/default", headers=h, json={"description": "x"}).status_code
        ),
        "assign a role": lambda h: (
            api.anon.put(
                "/api/v1/workspaces/default/role-assignments/rita", headers=h, json={"role": "Reader"}
            ).status_code
        ),
        "create a workspace": lambda h: api.anon.put("/api/v1/workspaces/new-ws", headers=h, json={}).status_code,
        "read another workspace": lambda h: api.anon.get(api.url("/models", "other"), headers=h).status_code,
        "list users": lambda h: api.anon.get("/api/v1/users", headers=h).status_code,
        "read the audit log": lambda h: api.anon.get("/api/v1/audit", headers=h).status_code,
    }
    ok, no = "ok", "403"
    expected = {  # rita Reader, dana Data Scientist, otto Compute Operator, carl Contributor, olga Owner
        "read models": [ok, ok, no, ok, ok],
        "write a model": [no, ok, no, ok, ok],
        "submit a job": [no, ok, no, ok, ok],
        "log to MLflow": [no, ok, no, ok, ok],
        "list computes": [ok, ok, ok, ok, ok],
        "create a compute": [no, no, ok, ok, ok],
        "read datastore secrets": [no, ok, no, ok, ok],
        "change the workspace": [no, no, no, ok, ok],
        "assign a role": [no, no, no, no, ok],
        "create a workspace": [no, no, no, no, no],
        "read another workspace": [no, no, no, no, no],
        "list users": [no, no, no, no, no],
        "read the audit log": [no, no, no, no, no],
    }
    got = {
        action: ["ok" if (code := run(users[u])) < 300 else str(code) for u in ROLES] for action, run in actions.items()
    }
    assert got == expected
    # The admin token still does everything.
    assert all(run(dict(api.http.headers)) < 300 for run in actions.values())
    # A user lists only the workspaces it has a role in; the message names the roles that would do.
    r = api.anon.get("/api/v1/workspaces", headers=users["rita"])
    assert [w["name"] for w in r.json()["value"]] == ["default"]
    r = api.anon.put(api.url("/computes/c"), headers=users["dana"], json={"type": "amlcompute"})
    assert "'compute' permission in workspace 'default'" in error_of(r)["message"]
    assert "AzureML Compute Operator" in error_of(r)["message"]
    # Roles combine, as in Azure: Data Scientist + Compute Operator is self-service compute.
    api.http.put("/api/v1/workspaces/default/role-assignments/dana", json={"role": "compute-operator"})
    r = api.anon.put(api.url("/computes/mine"), headers=users["dana"], json={"type": "amlcompute"})
    assert r.status_code == 200, r.text
    # An Owner's assignment applies to the next request.
    r = api.anon.delete("/api/v1/workspaces/default/role-assignments/dana", headers=users["olga"])
    assert r.status_code == 204
    assert api.anon.get(api.url("/models"), headers=users["dana"]).status_code == 403


def test_tokens_are_hashed_revocable_expire_and_survive_a_restart(api, shoal_home):
    alice = make_user(api, "alice", "Reader")
    token = alice["Authorization"].split()[1]
    assert token.startswith("shoalu_") and len(token) > 40
    assert api.anon.get(api.url("/models"), headers=alice).status_code == 200
    # Only the hash is stored.
    with api.app.state.ctx.db.read() as session:
        stored = list(session.scalars(select(ApiTokenRow)))
    assert stored and all(token not in (row.digest, row.name, row.token_id) for row in stored)
    if api.settings.database_url.startswith("sqlite"):
        assert token.encode() not in (shoal_home / "shoal.db").read_bytes()
    # A new server on the same home accepts it: tokens live in the database.
    again = create_app(api.settings)
    with TestClient(again) as fresh:
        assert fresh.get("/api/v1/workspaces/default/models", headers=alice).status_code == 200
    # Alice manages her own tokens, not anyone else's.
    make_user(api, "bob", "Reader")
    assert api.anon.get("/api/v1/users/alice/tokens", headers=alice).status_code == 200
    assert api.anon.get("/api/v1/users/bob/tokens", headers=alice).status_code == 403
    r = api.anon.post("/api/v1/users/alice/tokens", headers=alice, json={"name": "ci", "expires_in_days": 1})
    assert r.status_code == 201 and r.json()["state"] == "active"
    second = {"Authorization": f"Bearer {r.json()['token']}"}
    # Expired: refused with a message that says so.
    with api.app.state.ctx.db.write() as session:
        row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_id == r.json()["id"]))
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    r = api.anon.get(api.url("/models"), headers=second)
    assert r.status_code == 401 and "expired" in error_of(r)["message"]
    # Revoked: the next request is refused; the list says which and when.
    token_id = next(t["id"] for t in api.http.get("/api/v1/users/alice/tokens").json()["value"] if t["name"] == "test")
    r = api.anon.delete(f"/api/v1/users/alice/tokens/{token_id}", headers=alice)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    r = api.anon.get(api.url("/models"), headers=alice)
    assert r.status_code == 401 and "revoked" in error_of(r)["message"]
    states = {t["name"]: t["state"] for t in api.http.get("/api/v1/users/alice/tokens").json()["value"]}
    assert states == {"test": "revoked", "ci": "expired"}
    # Deleting a user ends its tokens; its name can be taken again.
    bob = api.http.post("/api/v1/users/bob/tokens", json={}).json()["token"]
    assert api.http.delete("/api/v1/users/bob").status_code == 204
    assert api.anon.get(api.url("/models"), headers={"Authorization": f"Bearer {bob}"}).status_code == 401


def test_bad_user_and_role_requests_are_refused_clearly(sqlite_api):
    api = sqlite_api
    cases = [
        ("POST", "/api/v1/users", {"name": "../x"}, 400, "invalid user name"),
        ("POST", "/api/v1/users", {"name": "admin"}, 400, "server's own admin token"),
        ("POST", "/api/v1/users", {"name": "eve", "admin": "yes"}, 400, "admin must be"),
        ("POST", "/api/v1/users", {"name": "eve", "password": "x"}, 400, "unknown user fields: password"),
        ("POST", "/api/v1/users/nobody/tokens", {}, 404, "nobody"),
        ("PUT", "/api/v1/workspaces/default/role-assignments/nobody", {"role": "Reader"}, 404, "nobody"),
        ("PUT", "/api/v1/workspaces/nope/role-assignments/eve", {"role": "Reader"}, 404, "nope"),
        ("PUT", "/api/v1/workspaces/default/role-assignments/eve", {"role": "Boss"}, 400, "'AzureML Data Scientist'"),
        ("PUT", "/api/v1/workspaces/default/role-assignments/eve", {}, 400, '{"role"'),
        (
            "DELETE",
            "/api/v1/workspaces/default/role-assignments/eve",
            None,
            404,
            "user 'eve' has no role in workspace 'default'",
        ),
    ]
    assert api.http.post("/api/v1/users", json={"name": "eve"}).status_code == 201
    assert api.http.post("/api/v1/users", json={"name": "eve"}).status_code == 409
    for days in (0, -1, 4000, "7", True):
        r = api.http.post("/api/v1/users/eve/tokens", json={"expires_in_days": days})
        assert r.status_code == 400 and "expires_in_days" in error_of(r)["message"], days
    for method, path, body, status, text in cases:
        r = api.http.request(method, path, json=body)
        assert r.status_code == status and text in error_of(r)["message"], (path, body, r.text)
    assert [u["name"] for u in api.http.get("/api/v1/users").json()["value"]] == ["eve"]
    assert api.http.get("/api/v1/workspaces/default/role-assignments").json()["value"] == []


def test_denied_requests_writes_and_secret_reads_are_audited(team):
    api, users = team
    api.anon.get(api.url("/models"))  # no token
    api.anon.get(api.url("/models"), headers={"Authorization": "Bearer forged"})
    api.anon.put(api.url("/models/m/versions/1"), headers=users["rita"], json={"path": "https://e.com/m"})
    api.anon.get(api.url("/datastores/workspaceblobstore"), headers=users["dana"], params={"include_secrets": "true"})
    api.anon.put(api.url("/models/m/versions/1"), headers=users["dana"], json={"path": "https://e.com/m"})
    api.anon.get(api.url("/models"), headers=users["dana"])  # a read: not audited

    def audit(**params: Any) -> list[dict]:
        r = api.http.get("/api/v1/audit", params=params)
        assert r.status_code == 200, r.text
        return r.json()["value"]

    denied = audit(outcome="denied")
    anonymous = [d for d in denied if d["actor"] == "anonymous"]
    assert len(anonymous) == 2 and {d["status"] for d in anonymous} == {401}
    assert {d["detail"] for d in anonymous} >= {"the bearer token is not valid for this server"}
    rita = audit(user="rita")
    assert [(d["method"], d["status"], d["outcome"], d["workspace"]) for d in rita] == [
        ("PUT", 403, "denied", "default")
    ]
    assert rita[0]["client"] == "testclient" and "'write' permission" in rita[0]["detail"]
    dana = audit(user="dana")
    assert [(d["action"], d["method"], d["status"]) for d in dana] == [("write", "PUT", 200), ("secrets", "GET", 200)]
    assert "include_secrets=true" in dana[1]["path"]
    # Setting up the users was audited too (the admin's writes), and the filters combine.
    assert {d["actor"] for d in audit()} >= {"admin", "anonymous", "rita", "dana"}
    assert audit(workspace="other") == []
    now = datetime.now(UTC)
    assert audit(since=(now + timedelta(minutes=1)).isoformat()) == []
    assert len(audit(user="dana", until=(now + timedelta(minutes=1)).isoformat())) == 2
    page = api.http.get("/api/v1/audit", params={"max_results": 2}).json()
    rest = api.http.get("/api/v1/audit", params={"max_results": 1000, "page_token": page["next_page_token"]}).json()
    assert [d["id"] for d in page["value"] + rest["value"]] == [d["id"] for d in audit(max_results=1000)]
    r = api.http.get("/api/v1/audit", params={"since": "yesterday"})
    assert r.status_code == 400 and "ISO 8601" in error_of(r)["message"]
    # Records past the retention (365 days) are pruned; newer ones stay.
    log = api.app.state.audit
    assert log.prune(now + timedelta(days=300)) == 0
    kept = len(audit(max_results=1000))
    assert kept > 0 and log.prune(now + timedelta(days=366)) == kept
    assert audit() == []


def test_job_tokens_carry_the_submitters_role(sqlite_team):
    api, users = sqlite_team
    r = api.anon.post(api.url("/jobs"), headers=users["dana"], json={"command": "echo hi", "environment": ENV})
    assert r.status_code == 200, r.text
    job = r.json()["name"]
    token = api.app.state.job_signer.issue("default", job, 0)
    as_job = {"Authorization": f"Bearer {token}"}
    assert api.anon.get(api.url(f"/jobs/{job}"), headers=as_job).status_code == 200
    # A job token still cannot do what its user may but a job may not (submit, read secrets).
    assert api.anon.post(api.url("/jobs"), headers=as_job, json={"command": "x", "environment": ENV}).status_code == 403
    r = api.anon.get(api.url("/datastores/workspaceblobstore"), headers=as_job, params={"include_secrets": "true"})
    assert r.status_code == 403 and "secrets" in error_of(r)["message"]
    # Taking the user's role away narrows the running job's token at once.
    assert api.http.delete("/api/v1/workspaces/default/role-assignments/dana").status_code == 204
    r = api.anon.get(api.url(f"/jobs/{job}"), headers=as_job)
    assert r.status_code == 403 and "'read' permission" in error_of(r)["message"]
    # A job the admin token submitted carries a job's usual rights.
    admin_job = api.http.post(api.url("/jobs"), json={"command": "echo hi", "environment": ENV}).json()["name"]
    tok = api.app.state.job_signer.issue("default", admin_job, 0)
    assert api.anon.get(api.url(f"/jobs/{job}"), headers={"Authorization": f"Bearer {tok}"}).status_code == 200


def test_team_mode_hides_docs_and_versions_from_callers_without_a_token(shoal_home):
    local = create_app(ShoalSettings(home=shoal_home))
    with TestClient(local) as c:
        assert c.get("/openapi.json").status_code == 200
        assert "server_version" in c.get("/api/v1/health").json()
    team = create_app(ShoalSettings(home=shoal_home, team_mode=True))
    token = {"Authorization": f"Bearer {(shoal_home / 'token').read_text().strip()}"}
    with TestClient(team) as c:
        for path in ("/openapi.json", "/docs"):  # no /redoc: ReDoc only loads from a CDN
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=token).status_code == 200, path
        assert c.get("/api/v1/health").json() == {"status": "ok"}
        assert "server_version" in c.get("/api/v1/health", headers=token).json()
    # Bound to a non-loopback address, a server is in team mode unless told otherwise.
    assert ShoalSettings(home=shoal_home, host="0.0.0.0").is_team_mode()
    assert not ShoalSettings(home=shoal_home, host="0.0.0.0", team_mode=False).is_team_mode()
    assert not ShoalSettings(home=shoal_home).is_team_mode()
