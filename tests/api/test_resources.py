"""Workspaces, compute targets and datastores over the REST API and the SDK, on both databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shoal.entities import (
    AccountKeyConfiguration,
    AmlCompute,
    AzureBlobDatastore,
    ComputeInstance,
    LocalDatastore,
    Workspace,
)
from shoal.errors import NotFoundError
from shoal.services.storage.files import store_for

from .conftest import error_of

BUILTINS = {"workspaceblobstore", "workspaceartifactstore"}


def db_rows(api, sql: str, **params: Any) -> list[Any]:
    """Rows read straight from the server's database, around the API."""
    engine = create_engine(api.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


# -- workspaces -------------------------------------------------------------------------------


def test_workspace_create_makes_its_builtin_datastores(api):
    ws = api.ml.workspaces.begin_create(Workspace(name="team-a", description="Team A")).result()
    assert ws.name == "team-a" and ws.description == "Team A"
    assert ws.mlflow_tracking_uri.endswith("/api/v1/workspaces/team-a/mlflow")
    team = api.client("team-a")
    stores = {d.name: d for d in team.datastores.list()}
    assert set(stores) == BUILTINS
    assert stores["workspaceblobstore"].is_default
    assert "/workspaces/team-a/" in stores["workspaceblobstore"].path
    assert team.datastores.get_default().name == "workspaceblobstore"
    assert {w.name for w in api.ml.workspaces.list()} == {"default", "team-a"}
    # Re-creating it keeps one pair of datastores.
    api.ml.workspaces.begin_create(Workspace(name="team-a", description="Team A")).result()
    assert sorted(d.name for d in team.datastores.list()) == sorted(BUILTINS)


def test_workspace_update_of_description_and_not_of_name(api):
    api.ml.workspaces.begin_create(Workspace(name="team-a", description="old")).result()
    r = api.http.patch("/api/v1/workspaces/team-a", json={"description": "new", "tags": {"k": "v"}})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "new"
    got = api.ml.workspaces.get("team-a")
    assert got.description == "new" and got.tags == {"k": "v"}

    r = api.http.patch("/api/v1/workspaces/team-a", json={"name": "team-b"})
    assert r.status_code == 400
    assert "name" in error_of(r)["message"]
    r = api.http.put("/api/v1/workspaces/team-a", json={"name": "team-b"})
    assert r.status_code == 400 and "team-b" in error_of(r)["message"]
    assert api.http.get("/api/v1/workspaces/team-b").status_code == 404
    assert api.ml.workspaces.get("team-a").description == "new"


def test_workspace_delete_removes_its_assets(api):
    api.ml.workspaces.begin_create(Workspace(name="team-a")).result()
    team = api.client("team-a")
    team.models.create_or_update({"name": "m", "version": "1", "path": "https://example.com/m.pkl"})
    team.compute.begin_create_or_update(AmlCompute(name="cpu")).result()
    team.datastores.create_or_update(LocalDatastore(name="mine", path=api.app.state.ctx.local_roots.default))
    ws_id = db_rows(api, "SELECT id FROM workspace WHERE name = 'team-a'")[0][0]

    r = api.http.delete("/api/v1/workspaces/team-a")
    assert r.status_code == 204
    assert api.http.get("/api/v1/workspaces/team-a").status_code == 404
    r = api.http.get(api.url("/models", "team-a"))
    assert r.status_code == 404 and "team-a" in error_of(r)["message"]
    for table in ("asset_container", "resource"):
        assert db_rows(api, f"SELECT id FROM {table} WHERE workspace_id = :w", w=ws_id) == []
    assert db_rows(api, "SELECT id FROM asset_version") == []
    assert api.http.delete("/api/v1/workspaces/team-a").status_code == 404

    # The same name again starts empty.
    api.ml.workspaces.begin_create(Workspace(name="team-a")).result()
    assert list(team.models.list()) == []
    assert [c.name for c in team.compute.list()] == ["local"]
    assert {d.name for d in team.datastores.list()} == BUILTINS
    # The default workspace was untouched.
    assert api.ml.workspaces.get("default").name == "default"


def test_other_workspace_assets_are_invisible(api):
    api.ml.workspaces.begin_create(Workspace(name="team-a")).result()
    team = api.client("team-a")
    team.models.create_or_update({"name": "secret-model", "version": "1", "path": "https://example.com/m.pkl"})
    team.compute.begin_create_or_update(AmlCompute(name="team-cpu")).result()

    assert api.http.get(api.url("/models/secret-model/versions/1")).status_code == 404
    assert api.http.get(api.url("/models/secret-model/labels/latest")).status_code == 404
    assert api.http.get(api.url("/models")).json()["value"] == []
    assert api.http.get(api.url("/computes/team-cpu")).status_code == 404
    with pytest.raises(NotFoundError):
        api.ml.models.get("secret-model", version="1")
    # Same name, other workspace: independent version counters.
    api.ml.models.create_or_update({"name": "secret-model", "path": "https://example.com/other.pkl"})
    assert api.ml.models.get("secret-model", label="latest").path == "https://example.com/other.pkl"
    assert team.models.get("secret-model", label="latest").path == "https://example.com/m.pkl"
    assert api.http.get(api.url("/models", "nosuch-ws")).status_code == 404


def test_workspace_routes_reject_bad_names(api):
    r = api.http.put("/api/v1/workspaces/ab", json={})
    assert r.status_code == 422 and "3 to 33" in error_of(r)["message"]
    assert api.http.get("/api/v1/workspaces/ab").status_code == 404


# -- compute ----------------------------------------------------------------------------------


def test_amlcompute_defaults(api):
    r = api.http.put(api.url("/computes/cpu"), json={"type": "amlcompute"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == "Standard_DS3_v2"
    assert body["min_instances"] == 0 and body["max_instances"] == 4
    assert body["idle_time_before_scale_down"] == 120
    assert body["provisioning_state"] == "Succeeded"
    c = api.ml.compute.get("cpu")
    assert isinstance(c, AmlCompute)
    assert (c.size, c.min_instances, c.max_instances, c.idle_time_before_scale_down) == (
        "Standard_DS3_v2",
        0,
        4,
        120,
    )
    assert c.provisioning_state == "Succeeded"


def test_min_above_max_is_rejected(api):
    r = api.http.put(api.url("/computes/cpu"), json={"type": "amlcompute", "min_instances": 5, "max_instances": 2})
    assert r.status_code in (400, 422)
    assert "min_instances" in error_of(r)["message"]
    assert api.http.get(api.url("/computes/cpu")).status_code == 404

    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu", max_instances=2)).result()
    r = api.http.patch(api.url("/computes/cpu"), json={"min_instances": 3})
    assert r.status_code in (400, 422) and "min_instances" in error_of(r)["message"]
    assert api.ml.compute.get("cpu").min_instances == 0


def test_compute_update(api):
    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu")).result()
    before = api.http.get(api.url("/computes/cpu")).json()
    updated = api.ml.compute.update("cpu", {"max_instances": 8, "description": "bigger"})
    assert updated.max_instances == 8 and updated.description == "bigger"

    r = api.http.patch(api.url("/computes/cpu"), json={"size": "Standard_NC6"})
    assert r.status_code == 400
    assert "size" in error_of(r)["message"]
    after = api.ml.compute.get("cpu")
    assert after.size == "Standard_DS3_v2" and after.max_instances == 8
    assert api.http.get(api.url("/computes/cpu")).json()["created_on"] == before["created_on"]


def test_compute_type_change_is_a_conflict(api):
    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu")).result()
    r = api.http.put(api.url("/computes/cpu"), json={"type": "computeinstance"})
    assert r.status_code == 409
    err = error_of(r)
    assert err["code"] == "CONFLICT" and "amlcompute" in err["message"]
    assert api.ml.compute.get("cpu").type == "amlcompute"


def test_compute_instance_power_actions(api):
    """What the power actions refuse, in-process; a real dev box is tests/e2e/test_devbox.py."""
    # A new instance starts, as on Azure; this app is not listening (its notebooks could not call
    # back), so it is created Stopped, saying why.
    ci = api.ml.compute.begin_create_or_update(ComputeInstance(name="dev-box")).result()
    assert ci.state == "Stopped" and ci.services is None
    assert ci.last_operation["operation_name"] == "Create" and ci.last_operation["operation_status"] == "Failed"
    assert "not listening" in ci.last_operation["shoal_reason"]

    def action(name: str, verb: str):
        return api.http.post(api.url(f"/computes/{name}/{verb}"))

    r = action("dev-box", "stop")
    assert r.status_code == 409 and error_of(r)["code"] == "INVALID_STATE"
    assert "already stopped" in error_of(r)["message"]
    r = action("dev-box", "restart")
    assert r.status_code == 409 and "start it instead" in error_of(r)["message"]
    r = action("dev-box", "start")
    assert r.status_code == 400 and error_of(r)["code"] == "UNSUPPORTED"
    assert "cannot start" in error_of(r)["message"]
    after = api.http.get(api.url("/computes/dev-box")).json()
    assert after["state"] == "Stopped" and after["last_operation"]["operation_name"] == "Create"
    assert "shoal_devbox" not in after
    # Re-applying the spec keeps the power state.
    assert api.ml.compute.begin_create_or_update(ComputeInstance(name="dev-box")).result().state == "Stopped"

    # idle_time_before_shutdown: an ISO 8601 duration or minutes, checked at create and update.
    r = api.http.put(
        api.url("/computes/dev-box"), json={"type": "computeinstance", "idle_time_before_shutdown": "PT1X"}
    )
    assert r.status_code == 422 and "idle_time_before_shutdown" in error_of(r)["message"]
    assert api.ml.compute.update("dev-box", {"idle_time_before_shutdown": "PT30M"}).idle_time_before_shutdown == "PT30M"
    assert api.ml.compute.update("dev-box", {"idle_time_before_shutdown": 45}).idle_time_before_shutdown == "45"
    r = api.http.patch(api.url("/computes/dev-box"), json={"idle_time_before_shutdown": "later"})
    assert r.status_code == 422 and "ISO 8601" in error_of(r)["message"]
    assert api.ml.compute.get("dev-box").idle_time_before_shutdown == "45"

    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu")).result()
    r = action("cpu", "stop")
    assert r.status_code == 400
    assert error_of(r)["code"] == "UNSUPPORTED" and "amlcompute" in error_of(r)["message"]
    assert action("nosuch", "start").status_code == 404
    assert action("dev-box", "explode").status_code == 422


def test_local_compute_is_built_in(api):
    names = [c["name"] for c in api.http.get(api.url("/computes")).json()["value"]]
    assert names == ["local"]
    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu")).result()
    listed = [(c.name, c.type) for c in api.ml.compute.list()]
    assert listed == [("local", "local"), ("cpu", "amlcompute")]
    assert [c.name for c in api.ml.compute.list(compute_type="AmlCompute")] == ["cpu"]
    assert api.ml.compute.get("local").type == "local"

    r = api.http.delete(api.url("/computes/local"))
    assert r.status_code == 400 and "built in" in error_of(r)["message"]
    r = api.http.put(api.url("/computes/local"), json={"type": "local"})
    assert r.status_code == 400 and "built in" in error_of(r)["message"]
    r = api.http.put(api.url("/computes/local"), json={"type": "amlcompute"})
    assert r.status_code == 400
    r = api.http.patch(api.url("/computes/local"), json={"description": "x"})
    assert r.status_code == 400
    r = api.http.post(api.url("/computes/local/stop"))
    assert r.status_code == 400 and error_of(r)["code"] == "UNSUPPORTED"
    assert [c.name for c in api.ml.compute.list()] == ["local", "cpu"]


def test_compute_delete(api):
    api.ml.compute.begin_create_or_update(AmlCompute(name="cpu")).result()
    assert api.http.delete(api.url("/computes/cpu")).status_code == 204
    assert api.http.get(api.url("/computes/cpu")).status_code == 404
    assert api.http.delete(api.url("/computes/cpu")).status_code == 404


def test_compute_ssh_password_is_never_returned(api):
    password = "Ssh-Pa55word-never-shown"
    r = api.http.put(
        api.url("/computes/cpu"),
        json={
            "type": "amlcompute",
            "ssh_settings": {"admin_username": "azureuser", "admin_password": password},
        },
    )
    assert r.status_code == 200, r.text
    assert password not in r.text
    assert r.json()["ssh_settings"] == {"admin_username": "azureuser"}
    assert password not in api.http.get(api.url("/computes/cpu")).text
    assert password not in api.http.get(api.url("/computes")).text
    assert password not in api.http.patch(api.url("/computes/cpu"), json={"max_instances": 6}).text
    rows = db_rows(api, "SELECT spec, secrets FROM resource WHERE name = 'cpu'")
    assert password not in str(rows[0][0]) and rows[0][1] and password not in rows[0][1]


# -- datastores -------------------------------------------------------------------------------

SECRET_CASES = {
    "account_key": (
        {"type": "azure_blob", "account_name": "acct", "container_name": "data"},
        "credentials",
        {"account_key": "AccountKey+Secret/Value=="},
        "account_key",
    ),
    "sas_token": (
        {"type": "azure_blob", "account_name": "acct", "container_name": "data"},
        "credentials",
        {"sas_token": "sv=2024-01-01&sig=SasSignatureSecret%3D"},
        "sas_token",
    ),
    "connection_string": (
        {"type": "azure_blob", "account_name": "acct", "container_name": "data"},
        "credentials",
        {
            "connection_string": "AccountName=acct;AccountKey=ConnStringKey+Secret==;BlobEndpoint=http://127.0.0.1:1/acct"
        },
        "connection_string",
    ),
    "s3_keys": (
        {"type": "s3", "bucket": "data", "endpoint_url": "http://127.0.0.1:1"},
        "credentials",
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "S3Secret/Access+Key"},
        "secret_access_key",
    ),
    "service_principal": (
        {"type": "azure_data_lake_gen2", "account_name": "acct", "filesystem": "fs"},
        "credentials",
        {"tenant_id": "tenant-1", "client_id": "client-1", "client_secret": "ClientSecret~Value.123"},
        "client_secret",
    ),
}


@pytest.mark.parametrize("case", sorted(SECRET_CASES))
def test_datastore_secret_is_never_returned_and_stored_encrypted(api, case):
    spec, key, creds, secret_field = SECRET_CASES[case]
    secret = creds[secret_field]
    body = {**spec, "description": "external", key: creds}

    r = api.http.put(api.url("/datastores/ext"), json=body)
    assert r.status_code == 200, r.text
    responses = {
        "create": r,
        "get": api.http.get(api.url("/datastores/ext")),
        "list": api.http.get(api.url("/datastores")),
        "get_default": api.http.get(api.url("/default-datastore")),
        "list_paged": api.http.get(api.url("/datastores"), params={"max_results": 1, "page_token": None}),
    }
    for what, resp in responses.items():
        assert resp.status_code == 200, (what, resp.text)
        assert secret not in resp.text, what
        assert json.dumps(secret)[1:-1] not in resp.text, what  # not even JSON-escaped
    public = r.json()
    assert secret_field not in public.get("credentials", {})
    for other in set(creds) - {secret_field}:  # non-secret parts of the credential stay visible
        assert public["credentials"][other] == creds[other]
    sdk = api.ml.datastores.get("ext")
    assert secret not in repr(sdk.model_dump())

    rows = db_rows(api, "SELECT spec, secrets FROM resource WHERE kind = 'datastore' AND name = 'ext'")
    assert len(rows) == 1
    stored_spec, stored_secrets = rows[0]
    assert secret not in (stored_spec if isinstance(stored_spec, str) else json.dumps(stored_spec))
    assert stored_secrets and secret not in stored_secrets
    assert stored_secrets.startswith("gAAAA")  # a Fernet token

    r = api.http.get(api.url("/datastores/ext"), params={"include_secrets": "true"})
    assert r.status_code == 200
    assert r.json()["credentials"][secret_field] == secret
    listed = api.http.get(api.url("/datastores"), params={"include_secrets": "true"}).json()["value"]
    assert {d["name"]: d for d in listed}["ext"]["credentials"][secret_field] == secret
    with_secret = api.ml.datastores.get("ext", include_secrets=True)
    assert getattr(with_secret.credentials, secret_field) == secret


def test_datastore_through_the_sdk(api):
    created = api.ml.datastores.create_or_update(
        AzureBlobDatastore(
            name="blob",
            account_name="acct",
            container_name="c",
            credentials=AccountKeyConfiguration(account_key="sdk-secret-key"),
        )
    )
    assert created.name == "blob" and not created.is_default
    assert {d.name for d in api.ml.datastores.list()} == BUILTINS | {"blob"}
    api.ml.datastores.delete("blob")
    with pytest.raises(NotFoundError):
        api.ml.datastores.get("blob")


def test_builtin_datastores_cannot_be_deleted_or_changed(api, tmp_path):
    before = api.http.get(api.url("/datastores/workspaceblobstore")).json()
    for name in sorted(BUILTINS):
        r = api.http.delete(api.url(f"/datastores/{name}"))
        assert r.status_code == 409
        assert error_of(r)["code"] == "INVALID_STATE" and "built in" in error_of(r)["message"]
        r = api.http.put(api.url(f"/datastores/{name}"), json={"type": "local", "path": str(tmp_path)})
        assert r.status_code == 409
    assert {d.name for d in api.ml.datastores.list()} == BUILTINS
    assert api.http.get(api.url("/datastores/workspaceblobstore")).json() == before


def test_unknown_datastore_type_names_allowed_types(api):
    r = api.http.put(api.url("/datastores/odd"), json={"type": "ftp_server", "host": "x"})
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "INVALID_SPEC" and "ftp_server" in err["message"]
    for allowed in ("azure_blob", "azure_data_lake_gen2", "local", "s3"):
        assert allowed in err["message"]
    assert api.http.get(api.url("/datastores/odd")).status_code == 404


def test_local_datastore_needs_an_existing_folder(api):
    # Inside the default allowed root (tests/api/test_local_datastore_roots.py tries the others).
    allowed = Path(api.app.state.ctx.local_roots.default)
    missing = allowed / "nope"
    r = api.http.put(api.url("/datastores/mine"), json={"type": "local", "path": str(missing)})
    assert r.status_code == 404
    assert str(missing) in error_of(r)["message"]
    r = api.http.put(api.url("/datastores/mine"), json={"type": "local", "path": "relative/dir"})
    assert r.status_code == 400 and "absolute" in error_of(r)["message"]
    assert api.http.get(api.url("/datastores/mine")).status_code == 404

    (allowed / "mine").mkdir()
    r = api.http.put(api.url("/datastores/mine"), json={"type": "local", "path": str(allowed / "mine")})
    assert r.status_code == 200
    assert r.json()["path"] == str(allowed / "mine")


def test_datastore_name_rule(api):
    r = api.http.put(api.url("/datastores/has-dash"), json={"type": "local", "path": "/tmp"})
    assert r.status_code == 422 and "no '-'" in error_of(r)["message"]


@pytest.mark.parametrize("case", ["account_key_sdk_round_trip", "service_principal_without_secret"])
def test_updating_a_datastore_without_its_secret_keeps_the_stored_one(api, case):
    if case == "account_key_sdk_round_trip":
        spec, _, creds, field = SECRET_CASES["account_key"]
    else:
        spec, _, creds, field = SECRET_CASES["service_principal"]
    assert api.http.put(api.url("/datastores/ext"), json={**spec, "credentials": creds}).status_code == 200
    if case == "account_key_sdk_round_trip":
        fetched = api.ml.datastores.get("ext")
        fetched.description = "changed"
        api.ml.datastores.create_or_update(fetched)
    else:
        public = {k: v for k, v in creds.items() if k != field}
        r = api.http.put(api.url("/datastores/ext"), json={**spec, "description": "changed", "credentials": public})
        assert r.status_code == 200, r.text
    got = api.http.get(api.url("/datastores/ext"), params={"include_secrets": "true"}).json()
    assert got["description"] == "changed"
    assert got["credentials"].get(field) == creds[field]


# -- datastores on real storage: local disk, S3 (moto) and Azure Blob (Azurite) ----------------


def _no_secret(secret: str | None, *responses: Any) -> None:
    for resp in responses:
        assert secret is None or secret not in resp.text, resp.text
        assert "Traceback" not in resp.text


def test_datastore_files_on_every_backend(sqlite_api, backend):
    """Register, write, list, read back: what a job's inputs and outputs do through the server."""
    api = sqlite_api
    r = api.http.put(api.url("/datastores/ext"), json=backend.datastore())
    assert r.status_code == 200, r.text
    backend.files().write_stream("seed/in.csv", [b"a,b\n1,2\n"])  # put there by someone else
    base = api.url("/datastores/ext")
    put = api.http.put(f"{base}/content", params={"path": "out/sub/x.bin"}, content=b"x" * 3000)
    assert put.status_code == 200, put.text
    listing = api.http.get(f"{base}/files", params={"path": ""})
    assert [(f["path"], f["size"]) for f in listing.json()["value"]] == [("out/sub/x.bin", 3000), ("seed/in.csv", 8)]
    assert api.http.get(f"{base}/files", params={"path": "out"}).json()["is_dir"] is True
    assert api.http.get(f"{base}/content", params={"path": "seed/in.csv"}).content == b"a,b\n1,2\n"
    with backend.files().open_read("out/sub/x.bin") as fh:
        assert fh.read() == b"x" * 3000  # really stored there, not on the server's disk
    missing = api.http.get(f"{base}/content", params={"path": "seed/none.csv"})
    assert missing.status_code == 404 and "'ext'" in error_of(missing)["message"]
    shown = api.http.get(base)
    _no_secret(backend.secret, r, listing, shown, missing, api.http.get(api.url("/datastores")))


def test_many_files_in_one_request_and_resumed_reads_on_every_backend(sqlite_api, backend):
    """A job's small outputs in one ``PUT …/contents`` and its inputs in one ``POST
    …/contents/read``; a large file read from an offset (a download resuming) answers 206."""
    from shoal.storage.batches import header, parse_batch

    api = sqlite_api
    assert api.http.put(api.url("/datastores/ext"), json=backend.datastore()).status_code == 200
    base = api.url("/datastores/ext")
    files = {f"d{i % 3}/f{i}.bin": bytes([i]) * (i * 100) for i in range(40)}
    body = b"".join(header(p, len(d)) + d for p, d in files.items())
    put = api.http.put(f"{base}/contents", params={"prefix": "out"}, content=body)
    assert put.status_code == 200, put.text
    assert len(put.json()["value"]) == 40
    listing = api.http.get(f"{base}/files", params={"path": "out"}).json()["value"]
    assert {f["path"]: f["size"] for f in listing} == {p: len(d) for p, d in files.items()}
    read = api.http.post(f"{base}/contents/read", json={"paths": [f"out/{p}" for p in files]})
    assert read.status_code == 200, read.text
    assert parse_batch([read.content]) == [(f"out/{p}", d) for p, d in files.items()]
    missing = api.http.post(f"{base}/contents/read", json={"paths": ["out/d0/f0.bin", "out/none"]})
    assert b"NOT_FOUND" in missing.content and b"out/none" in missing.content
    bad = api.http.put(f"{base}/contents", params={"prefix": "out"}, content=b'{"path": "../x", "size": 1}\nx')
    assert bad.status_code == 400 and "record 1" in error_of(bad)["message"]

    big = bytes(range(256)) * 40000  # 10 MB: more than one ranged read on Azure Blob
    assert api.http.put(f"{base}/content", params={"path": "big.bin"}, content=big).status_code == 200
    whole = api.http.get(f"{base}/content", params={"path": "big.bin"})
    assert whole.status_code == 200 and whole.content == big
    rest = api.http.get(f"{base}/content", params={"path": "big.bin"}, headers={"Range": "bytes=5000001-"})
    assert rest.status_code == 206 and rest.content == big[5000001:]
    assert rest.headers["content-range"] == f"bytes 5000001-{len(big) - 1}/{len(big)}"
    _no_secret(backend.secret, put, read, missing, bad, whole, rest)


@pytest.mark.parametrize("credentials", ["sas", "connection_string"])
def test_azure_blob_with_sas_token_or_connection_string(sqlite_api, azurite, tmp_path, credentials):
    from tests.objstores import Backend

    api = sqlite_api
    backend = Backend("azure_blob", tmp_path, azurite=azurite)
    backend.files().write_stream("d/f.txt", [b"blob"])
    assert api.http.put(api.url("/datastores/ext"), json=backend.datastore(credentials=credentials)).status_code == 200
    assert api.http.get(api.url("/datastores/ext/content"), params={"path": "d/f.txt"}).content == b"blob"
    shown = api.http.get(api.url("/datastores/ext")).json()
    assert "sas_token" not in shown.get("credentials", {}) and "connection_string" not in shown.get("credentials", {})


def test_wrong_credentials_are_a_clear_4xx_naming_the_datastore(sqlite_api, cloud_backend):
    api = sqlite_api
    body = cloud_backend.datastore(wrong=True)
    assert api.http.put(api.url("/datastores/badkey"), json=body).status_code == 200
    creds = body["credentials"]
    wrong = creds.get("secret_access_key") or creds.get("account_key")
    responses = [
        api.http.get(api.url("/datastores/badkey/files"), params={"path": ""}),
        api.http.get(api.url("/datastores/badkey/content"), params={"path": "a.txt"}),
        api.http.put(api.url("/datastores/badkey/content"), params={"path": "a.txt"}, content=b"a"),
    ]
    for resp in responses:
        assert resp.status_code == 403, resp.text
        err = error_of(resp)
        assert "datastore 'badkey'" in err["message"] and "credentials" in err["message"], err
        assert wrong not in resp.text and "Traceback" not in resp.text


def test_store_going_away_mid_upload_is_clear_and_publishes_nothing(sqlite_api, moto_s3, tmp_path, monkeypatch):
    """The link to S3 is cut (a real TCP relay closes) in the middle of a multipart upload and
    before another: both fail naming the datastore, and no object appears under either name."""
    import fsspec.config
    import s3fs

    from tests.objstores import Backend, Cutter

    # The drivers' own retries would take minutes to give up on a store that stays away.
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"config_kwargs": {"retries": {"max_attempts": 1}}})
    api = sqlite_api
    backend = Backend("s3", tmp_path, s3=moto_s3)
    relay = Cutter(int(moto_s3.url.rsplit(":", 1)[1]))
    try:
        body = {**backend.datastore(), "endpoint_url": f"http://127.0.0.1:{relay.port}"}
        assert api.http.put(api.url("/datastores/flaky"), json=body).status_code == 200
        # The server's own store for the datastore: the API reads the whole request body before
        # the app sees it, so the mid-stream cut is driven from here.
        store = store_for(api.app.state.ctx, "default", "flaky")

        def chunks():
            yield b"a" * (6 << 20)  # past s3fs's 5 MB block: a multipart upload has begun
            relay.cut()
            yield b"b" * (6 << 20)

        with pytest.raises(Exception) as caught:
            store.write_stream("big.bin", chunks())
        assert "cannot reach datastore 'flaky'" in str(caught.value)
        r = api.http.put(api.url("/datastores/flaky/content"), params={"path": "small.txt"}, content=b"x")
        assert r.status_code == 502, r.text
        assert "datastore 'flaky'" in error_of(r)["message"] and "Traceback" not in r.text
        relay.restore()
        listing = api.http.get(api.url("/datastores/flaky/files"), params={"path": ""})
        assert listing.status_code == 200 and listing.json()["value"] == []
        seen = backend.files()
        assert seen.fs.find(seen.root) == []  # not even a temporary object is left
    finally:
        relay.close()
