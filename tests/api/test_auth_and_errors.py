"""Every route but health needs a token; request errors come back in the one error format;
names, versions and file paths are validated before anything is stored or written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from shoal.server.auth import OTHER_ROUTE_RULES, READ_PERMISSIONS, Permission, Principal, Require
from shoal.storage.hashing import FileEntry, tree_hash

from .conftest import error_of

PUBLIC = {"/api/v1/health"}
DUMMY = {"workspace": "default", "action": "start", "upload_id": "0" * 32, "label": "latest", "version": "1"}


class Endpoint:
    """One routed endpoint: its full path, its methods and its APIRoute."""

    def __init__(self, path: str, methods: set[str], route: APIRoute, extra_dependencies: list) -> None:
        self.path = path
        self.methods = set(methods)
        self.route = route
        self.dependencies = [*route.dependant.dependencies, *extra_dependencies]


def api_routes(app) -> list[Endpoint]:
    """Every APIRoute of the app, also those behind included routers.

    FastAPI >= 0.16x keeps included routers as ``_IncludedRouter`` entries in ``app.routes``,
    so a flat ``isinstance(route, APIRoute)`` walk would find nothing and pass vacuously.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [Endpoint(r.path, r.methods, r, []) for r in app.routes if isinstance(r, APIRoute)]
    out = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            effective = getattr(context, "dependant", None)
            extra = list(effective.dependencies) if effective is not None and effective is not route.dependant else []
            out.append(Endpoint(context.path, context.methods or route.methods, route, extra))
    return out


def requirement(endpoint: Endpoint) -> Require | None:
    return next((d.call for d in endpoint.dependencies if isinstance(d.call, Require)), None)


def key_checked(endpoint: Endpoint) -> bool:
    """The online endpoints' scoring route: an endpoint key, not a Shoal token (routes/endpoints.py)."""
    from shoal.server.routes.endpoints import EndpointKey

    return any(isinstance(d.call, EndpointKey) for d in endpoint.dependencies)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: DUMMY.get(m.group(1), "x"), path)


def guarded_requests(app) -> list[tuple[str, str]]:
    out = []
    for route in api_routes(app):
        if route.path in PUBLIC:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, concrete(route.path)))
    return out


def snapshot(root: Path) -> dict[str, int]:
    """Every file under ``root`` and its size, but the database's: a refused write still leaves its
    audit record there (written by the audit log's thread up to 0.5 s later)."""
    return {
        str(p): p.stat().st_size
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and not p.name.startswith("shoal.db")
    }


# -- authentication ---------------------------------------------------------------------------


def test_every_route_but_health_is_guarded(sqlite_api):
    """Deny by default: every route of the app has a rule, a Require dependency or an entry in
    OTHER_ROUTE_RULES; a new route without one fails here."""
    app = sqlite_api.app
    routes = api_routes(app)
    assert len(routes) > 40
    unguarded = [
        f"{sorted(r.methods)} {r.path}"
        for r in routes
        if r.path not in PUBLIC and requirement(r) is None and not key_checked(r)
    ]
    assert not unguarded, f"routes without a Require dependency: {unguarded}"
    others = [r for r in app.routes if type(r).__name__ != "_IncludedRouter" and not isinstance(r, APIRoute)]
    assert others, "the OpenAPI routes should be found"
    no_rule = [getattr(r, "path", repr(r)) for r in others if getattr(r, "path", None) not in OTHER_ROUTE_RULES]
    assert not no_rule, f"routes with no rule in auth.OTHER_ROUTE_RULES: {no_rule}"
    health = [r for r in routes if r.path in PUBLIC]
    assert len(health) == 1 and requirement(health[0]) is None
    # Writes need more than read (MLflow's searches and batch file reads are reads sent as POST).
    for r in routes:
        req = requirement(r)
        reads = (
            "/mlflow/experiments/search",
            "/mlflow/runs/search",
            "/mlflow/logged-models/search",
            "/mlflow/registered-models/get-latest-versions",
            # Signing a browser in and out of the studio: any signed-in token, for itself only.
            "/studio/login-codes",
            "/studio/logout",
            "/contents/read",  # many datastore files in one response: the paths are the body
            "/direct-reads",  # URLs to read datastore files: the paths are the body
        )
        if r.path.endswith(reads):
            continue
        if req is not None and r.methods & {"PUT", "POST", "PATCH", "DELETE"}:
            assert req.permission not in READ_PERMISSIONS, r.path


def test_guarded_routes_refuse_missing_and_wrong_tokens(sqlite_api):
    api = sqlite_api
    requests = guarded_requests(api.app)
    failures = []
    headers_cases = {
        "none": {},
        "wrong": {"Authorization": "Bearer not-the-token"},
        "scheme": {"Authorization": f"Basic {api.token}"},
        "empty": {"Authorization": "Bearer "},
    }
    for method, path in requests:
        kwargs = {"json": {}} if method in ("PUT", "POST", "PATCH") else {}
        for case, headers in headers_cases.items():
            r = api.anon.request(method, path, headers=headers, **kwargs)
            # The MLflow routes answer in MLflow's error format, which its client reads.
            code = r.json().get("error_code") if "/mlflow/" in path else error_of(r)["code"]
            if r.status_code != 401 or code != "UNAUTHENTICATED":
                failures.append((case, method, path, r.status_code, r.text[:200]))
    assert not failures, failures
    # Nothing was created by any of them.
    assert [m["name"] for m in api.http.get(api.url("/models")).json()["value"]] == []
    assert [c["name"] for c in api.http.get(api.url("/computes")).json()["value"]] == ["local"]
    # And the real token works, also with a lower-case scheme.
    r = api.anon.get(api.url("/models"), headers={"Authorization": f"bearer {api.token}"})
    assert r.status_code == 200


def test_health_is_public(sqlite_api):
    r = sqlite_api.anon.get("/api/v1/health", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 200 and r.json()["database"] == "sqlite"


def test_permissions_are_enforced_per_route(sqlite_api):
    api = sqlite_api
    api.app.state.tokens.add("reader-token", Principal("reader", frozenset({Permission.READ})))
    api.app.state.tokens.add("writer-token", Principal("writer", frozenset({Permission.READ, Permission.WRITE})))
    reader = {"Authorization": "Bearer reader-token"}
    writer = {"Authorization": "Bearer writer-token"}

    assert api.anon.get(api.url("/models"), headers=reader).status_code == 200
    r = api.anon.put(api.url("/models/m/versions/1"), headers=reader, json={"path": "https://e.com/m"})
    assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED"
    assert "write" in error_of(r)["message"]
    r = api.anon.get(api.url("/datastores/workspaceblobstore"), headers=writer, params={"include_secrets": "true"})
    assert r.status_code == 403 and "secrets" in error_of(r)["message"]
    r = api.anon.get(api.url("/datastores"), headers=reader, params={"include_secrets": "true"})
    assert r.status_code == 403
    r = api.anon.put("/api/v1/workspaces/team-a", headers=writer, json={})
    assert r.status_code == 403 and "admin" in error_of(r)["message"]
    assert (
        api.anon.put(api.url("/models/m/versions/1"), headers=writer, json={"path": "https://e.com/m"}).status_code
        == 200
    )


def test_admin_token_file_is_private(sqlite_api):
    api = sqlite_api
    mode = stat.S_IMODE(api.settings.token_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert api.settings.token_file.read_text().strip() == api.token
    assert len(api.token) >= 32
    # The secrets key, made when the first secret is stored, is private as well.
    r = api.http.put(
        api.url("/datastores/ext"),
        json={
            "type": "azure_blob",
            "account_name": "a",
            "container_name": "c",
            "credentials": {"sas_token": "s"},
        },
    )
    assert r.status_code == 200
    assert stat.S_IMODE(api.settings.secret_key_file.stat().st_mode) == 0o600


# -- request errors ---------------------------------------------------------------------------


def test_json_body_with_another_content_type_is_415(sqlite_api):
    api = sqlite_api
    r = api.http.put(
        api.url("/models/m/versions/1"),
        content=json.dumps({"path": "https://e.com/m"}),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 415
    err = error_of(r)
    assert err["code"] == "UNSUPPORTED_MEDIA_TYPE" and "text/plain" in err["message"]
    r = api.http.post(
        api.url("/models/m/versions"),
        content=b'{"path": "https://e.com/m"}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 415
    assert api.http.get(api.url("/models"), params={"name": "m"}).status_code == 404


def test_body_over_4mb_is_413(sqlite_api):
    api = sqlite_api
    big = json.dumps({"path": "https://e.com/m", "description": "x" * (4 * 1024 * 1024)})
    r = api.http.put(api.url("/models/m/versions/1"), content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "PAYLOAD_TOO_LARGE"
    assert api.http.get(api.url("/models"), params={"name": "m"}).status_code == 404


@pytest.mark.parametrize("route", ["/computes/files", "/datastores/files"])
def test_body_limit_applies_to_resources_named_files(sqlite_api, route):
    api = sqlite_api
    body = {"type": "amlcompute"} if "computes" in route else {"type": "local", "path": "/tmp"}
    big = json.dumps({**body, "description": "x" * (4 * 1024 * 1024)})
    r = api.http.put(api.url(route), content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.status_code


def test_unknown_route_and_method_use_the_error_format(sqlite_api):
    api = sqlite_api
    r = api.http.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert error_of(r)["code"] == "NOT_FOUND"
    r = api.http.get(api.url("/widgets"))
    assert r.status_code == 404 and error_of(r)["code"] == "NOT_FOUND"
    r = api.http.delete(api.url("/models/m/versions/1"))
    assert r.status_code == 405 and "message" in error_of(r)


def test_missing_or_malformed_body_is_422(sqlite_api):
    api = sqlite_api
    r = api.http.put(api.url("/models/m/versions/1"))
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "INVALID_SPEC" and err["details"]["errors"]
    r = api.http.put(
        api.url("/models/m/versions/1"), content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    r = api.http.put(api.url("/models/m/versions/1"), json=["a", "list"])
    assert r.status_code == 422
    r = api.http.put(api.url("/models/m/versions/1"), json={"path": "https://e.com/m", "colour": "red"})
    assert r.status_code == 422 and "colour" in error_of(r)["message"]
    r = api.http.put(api.url("/models/m/versions/1"), json={"description": "no path"})
    assert r.status_code == 422 and "path" in error_of(r)["message"]
    r = api.http.put(api.url("/models/m/versions/1"), json={"name": "other", "path": "https://e.com/m"})
    assert r.status_code == 400 and "other" in error_of(r)["message"]
    r = api.http.put(api.url("/models/m/versions/1"), json={"version": "2", "path": "https://e.com/m"})
    assert r.status_code == 400
    assert api.http.get(api.url("/models"), params={"name": "m"}).status_code == 404


BAD_NAMES = ["bad name", "Ünïcode", "n" * 300, "-leading-dash", ".hidden"]
NAMED_ROUTES = [
    ("models", "/models/{}/versions/1", {"path": "https://e.com/m"}, "must start with a letter or digit"),
    (
        "data",
        "/data/{}/versions/1",
        {"type": "uri_file", "path": "https://e.com/d.csv"},
        "must start with a letter or digit",
    ),
    (
        "environments",
        "/environments/{}/versions/1",
        {"image": "python:3.11"},
        "must start with a letter or digit",
    ),
    (
        "components",
        "/components/{}/versions/1",
        {"command": "echo", "environment": {"image": "python:3.11"}},
        "lowercase",
    ),
    ("computes", "/computes/{}", {"type": "amlcompute"}, "2 to 24 characters"),
    (
        "datastores",
        "/datastores/{}",
        {"type": "azure_blob", "account_name": "a", "container_name": "c"},
        "letters, digits and '_'",
    ),
]


@pytest.mark.parametrize("plural,route,body,rule", NAMED_ROUTES, ids=[r[0] for r in NAMED_ROUTES])
def test_illegal_names_are_rejected_naming_the_rule(sqlite_api, plural, route, body, rule):
    api = sqlite_api
    before = api.http.get(api.url(f"/{plural}")).json()["value"]
    for name in BAD_NAMES:
        r = api.http.put(api.url(route.format(name)), json=body)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert r.status_code != 404, (name, r.text)
        message = error_of(r)["message"]
        assert rule in message, (name, message)
        assert "pattern" in message
    assert api.http.get(api.url(f"/{plural}")).json()["value"] == before


def test_illegal_workspace_names_are_rejected(sqlite_api):
    api = sqlite_api
    for name in ["bad name", "Ünïcode", "w" * 300]:
        r = api.http.put(f"/api/v1/workspaces/{name}", json={})
        assert r.status_code == 422, (name, r.text)
        assert "3 to 33 characters" in error_of(r)["message"]
    assert [w["name"] for w in api.http.get("/api/v1/workspaces").json()["value"]] == ["default"]


@pytest.mark.parametrize("version", ["1 2", "-1", "v/2", "ü", "x" * 65])
def test_illegal_versions_are_rejected(sqlite_api, version):
    api = sqlite_api
    r = api.http.put(api.url(f"/models/m/versions/{version}"), json={"path": "https://e.com/m"})
    assert 400 <= r.status_code < 500
    if r.status_code != 404:  # 'v/2' is a routing matter
        assert "version" in error_of(r)["message"]
    assert api.http.get(api.url("/models"), params={"name": "m"}).status_code == 404


# -- path traversal in the file routes --------------------------------------------------------

BAD_PATHS = [
    "../../etc/passwd",
    "%2e%2e/x",
    "/etc/passwd",
    "a\\b",
    "a;b",
    "a/../../x",
    "..",
    "./a",
    "C:/x",
    "a\x00b",
]


def test_file_routes_refuse_traversal(sqlite_api, tmp_path):
    api = sqlite_api
    base = api.url("/datastores/workspaceblobstore")
    root = Path(api.http.get(base).json()["path"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "ok.txt").write_text("fine")
    assert api.http.get(f"{base}/content", params={"path": "ok.txt"}).content == b"fine"

    for bad in BAD_PATHS:
        for route in ("content", "files"):
            r = api.http.get(f"{base}/{route}", params={"path": bad})
            assert r.status_code == 400, (route, bad, r.status_code, r.text)
            assert error_of(r)["code"] == "BAD_REQUEST"
            assert "root:" not in r.text
    # Percent-encoded dots that the server decodes itself.
    for raw in ("%2e%2e/%2e%2e/etc/passwd", "..%2f..%2fetc%2fpasswd", "%252e%252e/x"):
        r = api.http.get(f"{base}/content?path={raw}")
        assert r.status_code == 400, (raw, r.text)


def test_symlink_out_of_a_datastore_is_refused(sqlite_api, tmp_path):
    api = sqlite_api
    base = api.url("/datastores/workspaceblobstore")
    root = Path(api.http.get(base).json()["path"])
    root.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not serve")
    os.symlink(outside, root / "escape")
    r = api.http.get(f"{base}/content", params={"path": "escape/secret.txt"})
    assert r.status_code == 400 and "do not serve" not in r.text


def manifest(files: dict[str, bytes], name: str = "pkg") -> dict:
    entries = [FileEntry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()]
    return {"name": name, "files": [e.to_dict() for e in entries], "hash": tree_hash(entries)}


def test_uploads_refuse_traversal_and_write_nothing_outside(sqlite_api, tmp_path):
    api = sqlite_api
    uploads = api.url("/datastores/workspaceblobstore/uploads")
    api.http.get(api.url("/datastores/workspaceblobstore/files"))  # the datastore folder exists
    before = snapshot(tmp_path)

    evil = [
        manifest({"../x": b"evil"}),
        manifest({"a/../../x": b"evil"}),
        manifest({"/etc/cron.d/x": b"evil"}),
        manifest({"a\\..\\x": b"evil"}),
        manifest({"ok.txt": b"evil"}, name=".."),
        manifest({"ok.txt": b"evil"}, name="../up"),
    ]
    for body in evil:
        r = api.http.post(uploads, json=body)
        assert r.status_code == 400, (body, r.text)
        assert error_of(r)["code"] == "BAD_REQUEST" and "invalid" in error_of(r)["message"]
    assert snapshot(tmp_path) == before

    # A valid upload whose files are then sent under other paths.
    r = api.http.post(uploads, json=manifest({"ok.txt": b"good"}))
    assert r.status_code == 200, r.text
    upload_id = r.json()["upload_id"]
    staged = snapshot(tmp_path)
    for bad in ("../ok.txt", "../../../x", "/tmp/x", "ok.txt/../../x"):
        r = api.http.put(
            f"{uploads}/{upload_id}/files",
            params={"path": bad},
            content=b"good",
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 400, (bad, r.text)
    r = api.http.post(f"{uploads}/not-an-id/commit")
    assert r.status_code == 400 and "upload id" in error_of(r)["message"]
    assert snapshot(tmp_path) == staged
    assert not (tmp_path / "x").exists() and not Path("/tmp/x").exists()
