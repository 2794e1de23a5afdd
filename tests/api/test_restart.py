"""State survives a server restart: a new app on the same database and SHOAL_HOME sees it all."""

from __future__ import annotations

from pathlib import Path

from shoal.entities import ComputeInstance, Model, Workspace

from .conftest import Api

SECRET = "Restart-Survives/AccountKey=="


def test_state_survives_a_restart(api, tmp_path: Path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"\x00weights\xff" * 1000)

    # Versions 1, 3, 2 (latest is 2), one archived version, one archived name.
    for v in ("1", "3", "2"):
        assert api.http.put(api.url(f"/models/m/versions/{v}"), json={"path": "https://e.com/m.pkl"}).status_code == 200
    api.ml.models.create_or_update(Model(name="m", version="4", path=str(folder), tags={"t": "1"}))
    api.ml.models.archive("m", version="4")
    api.ml.models.update("m", "1", description="patched", stage="Production")
    api.ml.models.create_or_update(Model(name="gone", path="https://e.com/g.pkl"))
    api.ml.models.archive("gone")
    r = api.http.put(
        api.url("/datastores/ext"),
        json={
            "type": "azure_blob",
            "account_name": "a",
            "container_name": "c",
            "credentials": {"account_key": SECRET},
        },
    )
    assert r.status_code == 200
    # Created Stopped (`compute start` runs its dev box: tests/e2e/test_devbox.py).
    api.ml.compute.begin_create_or_update(ComputeInstance(name="dev-box")).result()
    api.ml.workspaces.begin_create(Workspace(name="team-a", description="kept")).result()
    api.client("team-a").models.create_or_update(Model(name="tm", path="https://e.com/t.pkl"))

    before = {
        "versions": api.http.get(api.url("/models"), params={"name": "m", "list_view_type": "All"}).json(),
        "v1": api.http.get(api.url("/models/m/versions/1")).json(),
        "v4": api.http.get(api.url("/models/m/versions/4")).json(),
        "names": api.http.get(api.url("/models"), params={"list_view_type": "All"}).json(),
    }
    token = api.token
    api.close()

    again = Api(api.settings)
    try:
        assert again.token == token  # the admin token is kept
        assert (
            again.http.get(api.url("/models"), params={"name": "m", "list_view_type": "All"}).json()
            == before["versions"]
        )
        assert again.http.get(api.url("/models/m/versions/1")).json() == before["v1"]
        assert again.http.get(api.url("/models/m/versions/4")).json() == before["v4"]
        assert again.http.get(api.url("/models"), params={"list_view_type": "All"}).json() == before["names"]

        assert again.ml.models.get("m", label="latest").version == "2"
        assert [m.version for m in again.ml.models.list("m")] == ["2", "3", "1"]
        assert [m.version for m in again.ml.models.list("m", list_view_type="ArchivedOnly")] == ["4"]
        assert [m.name for m in again.ml.models.list()] == ["m"]
        assert [m.name for m in again.ml.models.list(list_view_type="ArchivedOnly")] == ["gone"]
        v1 = again.ml.models.get("m", version="1")
        assert v1.description == "patched" and v1.stage == "Production"
        # The version counter continues where it was.
        assert again.ml.models.create_or_update(Model(name="m", path="https://e.com/m.pkl")).version == "5"

        # Uploaded content is still there, byte for byte, and is not uploaded again.
        v4 = again.ml.models.get("m", version="4")
        target = again.ml.models.download("m", version="4", download_path=tmp_path / "dl")
        assert (target / "w.bin").read_bytes() == (folder / "w.bin").read_bytes()
        same = again.ml.models.create_or_update(Model(name="m2", path=str(folder)))
        assert same.path == v4.path

        # Secrets still decrypt with the key kept in SHOAL_HOME, and are still hidden by default.
        assert SECRET not in again.http.get(api.url("/datastores/ext")).text
        ds = again.http.get(api.url("/datastores/ext"), params={"include_secrets": "true"}).json()
        assert ds["credentials"]["account_key"] == SECRET

        assert again.ml.compute.get("dev-box").state == "Stopped"
        assert again.ml.workspaces.get("team-a").description == "kept"
        assert again.client("team-a").models.get("tm", label="latest").version == "1"
        assert {d.name for d in again.client("team-a").datastores.list()} == {
            "workspaceblobstore",
            "workspaceartifactstore",
        }
    finally:
        again.close()
