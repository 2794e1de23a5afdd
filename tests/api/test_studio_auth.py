"""The studio's sign-in, on the real app: one-time login codes, the session cookie bound to its
token (never more, ended by revoking it), CSRF on cookie writes, pages and data without a session,
workspace isolation through the roles, the MLflow link page and Swagger UI from local files."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shoal.config import ShoalSettings
from shoal.server.app import create_app
from shoal.services.studio import logins
from tests.api.conftest import Api, error_of

MLFLOW = "/mlflow/api/2.0/mlflow/"


@pytest.fixture
def studio_api(shoal_home: Path, database_url: str, tmp_path: Path):
    """The API with a studio folder of known pages (the real pages are studio-ui's files)."""
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>Shoal studio</title><main id=main></main>")
    (static / "app.js").write_text("export const ok = 1;\n")
    a = Api(ShoalSettings(home=shoal_home, database_url=database_url))
    a.app.state.audit.close()  # this app is replaced by one with the studio folder above
    a.app = create_app(a.settings, context=a.app.state.ctx, studio_static=static)
    a.http = TestClient(a.app, raise_server_exceptions=False)
    a.http.headers["Authorization"] = f"Bearer {a.token}"
    yield a
    a.close()


def browser(api: Api) -> TestClient:
    """A client with no token: what a browser sends is its cookies."""
    return TestClient(api.app, raise_server_exceptions=False, follow_redirects=False)


def sign_in(api: Api, token: str) -> TestClient:
    r = api.http.post("/api/v1/studio/login-codes", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    assert url.startswith("http://testserver/studio/login?code=")
    b = browser(api)
    landed = b.get(url.removeprefix("http://testserver"))
    assert landed.status_code == 303 and landed.headers["location"] == "/studio/", landed.text
    return b


def user_with_role(api: Api, name: str, role: str | None, workspace: str = "default") -> tuple[str, str]:
    assert api.http.post("/api/v1/users", json={"name": name}).status_code == 201
    if role:
        r = api.http.put(f"/api/v1/workspaces/{workspace}/role-assignments/{name}", json={"role": role})
        assert r.status_code == 200, r.text
    made = api.http.post(f"/api/v1/users/{name}/tokens", json={"name": "t"}).json()
    return made["token"], made["id"]


def test_login_link_sets_a_strict_httponly_session_that_works_once(studio_api):
    api = studio_api
    r = api.http.post("/api/v1/studio/login-codes")
    code_url = r.json()["url"].removeprefix("http://testserver")
    b = browser(api)
    landed = b.get(code_url + "&next=/studio/workspaces/default/jobs")
    assert landed.status_code == 303 and landed.headers["location"] == "/studio/workspaces/default/jobs"
    cookies = landed.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("shoal_session="))
    csrf = next(c for c in cookies if c.startswith("shoal_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    # The same link again (another browser): refused, and it says why.
    again = browser(api).get(code_url)
    assert again.status_code == 401 and "shoal studio" in again.text
    # The session reads pages and data.
    page = b.get("/studio/workspaces/default/jobs")
    assert page.status_code == 200 and "<title>Shoal studio</title>" in page.text
    assert b.get("/studio/static/app.js").text == "export const ok = 1;\n"
    me = b.get("/api/v1/studio/me").json()
    assert me["admin"] is True and me["workspaces"] is None
    assert b.get("/api/v1/workspaces/default/studio/jobs").status_code == 200
    # A redirect elsewhere than a studio page is not followed.
    other = browser(api).get(api.http.post("/api/v1/studio/login-codes").json()["url"][17:] + "&next=//evil.example/")
    assert other.headers["location"] == "/studio/"


def test_without_a_session_pages_go_to_login_and_data_is_401(studio_api):
    b = browser(studio_api)
    page = b.get("/studio/workspaces/default/jobs?experiment=x")
    assert page.status_code == 303
    assert page.headers["location"] == "/studio/login?next=%2Fstudio%2Fworkspaces%2Fdefault%2Fjobs%3Fexperiment%3Dx"
    login = b.get("/studio/login")
    assert login.status_code == 200 and "shoal studio" in login.text
    for path in ("/api/v1/workspaces/default/studio/jobs", "/api/v1/studio/me", "/api/v1/workspaces/default/jobs"):
        r = b.get(path)
        assert r.status_code == 401, path
    b.cookies.set("shoal_session", "forged")
    assert b.get("/api/v1/workspaces/default/studio/jobs").status_code == 401
    assert b.get("/studio/").status_code == 303
    # Static files carry no data: the login page uses them.
    assert b.get("/studio/static/app.js").status_code == 200


def test_cookie_writes_need_the_csrf_header(studio_api):
    api = studio_api
    exp = api.http.post(api.url(MLFLOW + "experiments/create"), json={"name": "e"}).json()["experiment_id"]
    run = api.http.post(api.url(MLFLOW + "runs/create"), json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    b = sign_in(api, api.token)
    patch = {"tags": {"note": "from the studio"}}
    refused = b.patch(f"/api/v1/workspaces/default/jobs/{run}", json=patch)
    assert refused.status_code == 403 and "X-Shoal-CSRF".lower() in error_of(refused)["message"].lower()
    wrong = b.patch(f"/api/v1/workspaces/default/jobs/{run}", json=patch, headers={"X-Shoal-CSRF": "guess"})
    assert wrong.status_code == 403
    ok = b.patch(
        f"/api/v1/workspaces/default/jobs/{run}", json=patch, headers={"X-Shoal-CSRF": b.cookies["shoal_csrf"]}
    )
    assert ok.status_code == 200 and ok.json()["tags"] == {"note": "from the studio"}
    # A page of another origin (a rebound name, a cross-site form) is refused even with the token.
    csrf = {"X-Shoal-CSRF": b.cookies["shoal_csrf"]}
    elsewhere = b.patch(
        f"/api/v1/workspaces/default/jobs/{run}", json=patch, headers={**csrf, "Origin": "http://evil.example:8080"}
    )
    assert elsewhere.status_code == 403 and "evil.example" in error_of(elsewhere)["message"]
    same = b.patch(
        f"/api/v1/workspaces/default/jobs/{run}", json=patch, headers={**csrf, "Origin": "http://testserver"}
    )
    assert same.status_code == 200
    # Signing out ends the session: its cookie signs nothing in afterwards.
    old = b.cookies["shoal_session"]
    out = b.post("/api/v1/studio/logout", headers={"X-Shoal-CSRF": b.cookies["shoal_csrf"]})
    assert out.status_code == 204
    stale = browser(api)
    stale.cookies.set("shoal_session", old)
    assert stale.get("/api/v1/studio/me").status_code == 401


def test_a_session_holds_its_tokens_roles_and_dies_with_the_token(studio_api):
    api = studio_api
    assert api.http.put("/api/v1/workspaces/team", json={"name": "team"}).status_code in (200, 201)
    token, token_id = user_with_role(api, "rita", "Reader", workspace="team")
    b = sign_in(api, token)
    assert b.get("/api/v1/studio/me").json() == {
        "principal": "rita",
        "user": "rita",
        "admin": False,
        "workspaces": ["team"],
    }
    assert b.get("/api/v1/workspaces/team/studio/jobs").status_code == 200
    # Nothing of another workspace, and no writes with a Reader's role.
    denied = b.get("/api/v1/workspaces/default/studio/jobs")
    assert denied.status_code == 403 and "read" in error_of(denied)["message"]
    csrf = {"X-Shoal-CSRF": b.cookies["shoal_csrf"]}
    assert b.post("/api/v1/workspaces/team/jobs", json={"command": "echo"}, headers=csrf).status_code == 403
    # The role taken away: at once. The token revoked: the session is dead.
    api.http.delete("/api/v1/workspaces/team/role-assignments/rita")
    assert b.get("/api/v1/workspaces/team/studio/jobs").status_code == 403
    assert api.http.delete(f"/api/v1/users/rita/tokens/{token_id}").status_code == 200
    gone = b.get("/api/v1/studio/me")
    assert gone.status_code == 401 and "revoked" in error_of(gone)["message"]
    assert b.get("/studio/workspaces/team/jobs").status_code == 303


def test_codes_expire_and_sessions_cannot_mint_codes(studio_api, monkeypatch):
    api = studio_api
    monkeypatch.setattr(logins, "CODE_LIFETIME", logins.CODE_LIFETIME * -1)
    url = api.http.post("/api/v1/studio/login-codes").json()["url"]
    assert browser(api).get(url.removeprefix("http://testserver")).status_code == 401
    monkeypatch.undo()
    b = sign_in(api, api.token)
    # A session cannot mint more codes: a code comes from a bearer token.
    r = b.post("/api/v1/studio/login-codes", headers={"X-Shoal-CSRF": b.cookies["shoal_csrf"]})
    assert r.status_code == 400 and "bearer" in error_of(r)["message"]


def test_mlflow_links_land_on_studio_pages(studio_api):
    api = studio_api
    exp = api.http.post(api.url(MLFLOW + "experiments/create"), json={"name": "my exp"}).json()["experiment_id"]
    b = browser(api)
    for path in ("/api/v1/workspaces/default/mlflow/", "/api/v1/workspaces/default/mlflow"):
        page = b.get(path)  # what "View run at <tracking uri>/#/experiments/1/runs/abc" loads
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/studio/workspaces/" in page.text and "location.replace" in page.text
        assert '"default"' in page.text
    signed = sign_in(api, api.token)
    to = signed.get(f"/studio/workspaces/default/experiments/{exp}")
    assert to.status_code == 302 and to.headers["location"] == "/studio/workspaces/default/jobs?experiment=my%20exp"
    assert signed.get("/studio/workspaces/default/experiments/999").headers["location"].endswith("/jobs")


def test_swagger_ui_comes_from_local_files(studio_api):
    b = browser(studio_api)
    page = b.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    js = b.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 500_000
    assert b.get("/docs/assets/swagger-ui.css").status_code == 200
    assert b.get("/openapi.json").json()["info"]["title"] == "Shoal"
