"""Versioned assets over the REST API and the SDK, on SQLite and PostgreSQL.

Explicit versions are immutable, omitted versions auto-increment (also under concurrency),
``latest`` is the most recently created active version, archive/restore act on a version or a
whole name, only metadata can be updated, and listings page with keyset tokens.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.testclient import TestClient

from shoal.entities import Model
from shoal.errors import ConflictError

from .conftest import error_of

URL_OF_MODEL = "https://example.com/models/m.pkl"


def model_body(**extra: Any) -> dict[str, Any]:
    return {"path": URL_OF_MODEL, "description": "a model", "tags": {"team": "a"}, **extra}


def put(api, name: str, version: str, body: dict[str, Any] | None = None):
    return api.http.put(api.url(f"/models/{name}/versions/{version}"), json=body or model_body())


def post(api, name: str, body: dict[str, Any] | None = None):
    return api.http.post(api.url(f"/models/{name}/versions"), json=body or model_body())


def get_version(api, name: str, version: str):
    return api.http.get(api.url(f"/models/{name}/versions/{version}"))


def latest(api, name: str):
    return api.http.get(api.url(f"/models/{name}/labels/latest"))


def list_versions(api, name: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, following next_page_token."""
    query = {k: v for k, v in {"name": name, **params}.items() if v is not None}
    items: list[dict[str, Any]] = []
    while True:
        r = api.http.get(api.url("/models"), params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["value"])
        if not body["next_page_token"]:
            return items
        query["page_token"] = body["next_page_token"]


def versions_of(api, name: str, **params: Any) -> list[str]:
    return [m["version"] for m in list_versions(api, name, **params)]


# -- immutability -----------------------------------------------------------------------------


def test_identical_recreate_of_explicit_version_is_a_noop(api):
    first = put(api, "m", "1")
    assert first.status_code == 200, first.text
    created = first.json()
    assert created["version"] == "1" and created["path"] == URL_OF_MODEL

    again = put(api, "m", "1")
    assert again.status_code == 200, again.text
    assert again.json() == created  # same body, same creation and modification times

    # Sending back what GET returned (read-only fields included) is identical too.
    fetched = get_version(api, "m", "1").json()
    assert put(api, "m", "1", fetched).json() == created
    assert versions_of(api, "m") == ["1"]


def test_different_body_for_existing_version_is_a_conflict_naming_the_field(api):
    assert put(api, "m", "1").status_code == 200
    before = get_version(api, "m", "1").json()

    r = put(api, "m", "1", model_body(path="https://example.com/other.pkl"))
    assert r.status_code == 409
    err = error_of(r)
    assert err["code"] == "CONFLICT"
    assert "path" in err["message"] and "'1'" in err["message"]
    assert err["details"]["differs"] == ["path"]

    r = put(api, "m", "1", model_body(tags={"team": "b"}))
    assert r.status_code == 409 and "tags" in error_of(r)["message"]

    assert get_version(api, "m", "1").json() == before
    assert versions_of(api, "m") == ["1"]


def test_sdk_raises_conflict_for_a_changed_explicit_version(api):
    api.ml.models.create_or_update(Model(name="m", version="1", path=URL_OF_MODEL))
    try:
        api.ml.models.create_or_update(Model(name="m", version="1", path=URL_OF_MODEL, type="mlflow_model"))
    except ConflictError as exc:
        assert "type" in exc.message
    else:  # pragma: no cover - the assertion below names the problem
        raise AssertionError("a changed explicit version was accepted")


# -- auto-increment and latest ------------------------------------------------------------------


def test_omitted_version_auto_increments(api):
    created = [post(api, "m") for _ in range(3)]
    assert [r.status_code for r in created] == [200, 200, 200]
    assert [r.json()["version"] for r in created] == ["1", "2", "3"]
    # Through the SDK too (no version on the entity).
    sdk = api.ml.models.create_or_update(Model(name="m", path=URL_OF_MODEL))
    assert sdk.version == "4"
    assert versions_of(api, "m") == ["4", "3", "2", "1"]


def test_post_with_a_version_in_the_body_is_refused(api):
    r = post(api, "m", model_body(version="5"))
    assert r.status_code == 400
    assert "PUT" in error_of(r)["message"]
    assert api.http.get(api.url("/models"), params={"name": "m"}).status_code == 404


def test_auto_version_continues_above_an_explicit_one(api):
    assert put(api, "m", "7").status_code == 200
    assert post(api, "m").json()["version"] == "8"
    # A non-numeric explicit version does not disturb the counter.
    assert put(api, "m", "v2-beta").status_code == 200
    assert post(api, "m").json()["version"] == "9"


def test_auto_version_skips_numbers_taken_explicitly(api):
    assert post(api, "m").json()["version"] == "1"
    assert put(api, "m", "3").status_code == 200
    assert put(api, "m", "2").status_code == 200
    assert post(api, "m").json()["version"] == "4"


def test_latest_is_the_most_recently_created_version(api):
    for v in ("1", "3", "2"):
        assert put(api, "m", v).status_code == 200
    r = latest(api, "m")
    assert r.status_code == 200 and r.json()["version"] == "2"
    assert api.ml.models.get("m", label="latest").version == "2"
    assert list_versions(api)[0]["latest_version"] == "2"


def test_latest_skips_archived_versions(api):
    for v in ("1", "2", "3"):
        put(api, "m", v)
    r = api.http.post(api.url("/models/m/archive"), json={"version": "3"})
    assert r.status_code == 200, r.text
    assert latest(api, "m").json()["version"] == "2"
    api.ml.models.archive("m", version="2")
    assert latest(api, "m").json()["version"] == "1"

    api.ml.models.archive("m", version="1")
    r = latest(api, "m")
    assert r.status_code == 404
    assert "archived" in error_of(r)["message"]
    # Archived versions can still be read by number.
    assert get_version(api, "m", "3").json()["archived"] is True


def test_label_archive_targets_the_latest_version(api):
    for v in ("1", "2"):
        put(api, "m", v)
    r = api.http.post(api.url("/models/m/archive"), json={"label": "latest"})
    assert r.status_code == 200
    assert versions_of(api, "m") == ["1"]
    r = api.http.post(api.url("/models/m/archive"), json={"label": "newest"})
    assert r.status_code == 400 and "newest" in error_of(r)["message"]


def test_unknown_label_and_missing_version_are_reported(api):
    put(api, "m", "1")
    r = api.http.get(api.url("/models/m/labels/stable"))
    assert r.status_code == 400 and "stable" in error_of(r)["message"]
    r = get_version(api, "m", "9")
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "NOT_FOUND" and "'9'" in err["message"]
    r = get_version(api, "nosuch", "1")
    assert r.status_code == 404 and "nosuch" in error_of(r)["message"]


def test_concurrent_creators_get_distinct_versions(api):
    workers = 20
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def create(i: int) -> None:
        with TestClient(api.app, raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {api.token}"
            barrier.wait(timeout=30)
            try:
                results[i] = client.post(api.url("/models/race/versions"), json=model_body())
            except Exception as exc:  # noqa: BLE001 - reported below
                results[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    problems = [
        r if isinstance(r, Exception) else (r.status_code, r.text)
        for r in results
        if isinstance(r, Exception) or r is None or r.status_code != 200
    ]
    assert not problems, problems
    versions = sorted(int(r.json()["version"]) for r in results)
    assert versions == list(range(1, workers + 1))
    stored = versions_of(api, "race")
    assert sorted(int(v) for v in stored) == list(range(1, workers + 1))
    assert post(api, "race").json()["version"] == str(workers + 1)


# -- archive and restore ----------------------------------------------------------------------


def test_archive_and_restore_one_version(api):
    for v in ("1", "2"):
        put(api, "m", v)
    api.ml.models.archive("m", version="1")
    assert versions_of(api, "m") == ["2"]
    assert versions_of(api, "m", list_view_type="ArchivedOnly") == ["1"]
    assert versions_of(api, "m", list_view_type="All") == ["2", "1"]
    assert [m.version for m in api.ml.models.list("m", list_view_type="All")] == ["2", "1"]

    api.ml.models.restore("m", version="1")
    assert versions_of(api, "m") == ["2", "1"]
    assert versions_of(api, "m", list_view_type="ArchivedOnly") == []
    assert "archived" not in get_version(api, "m", "1").json()


def test_archive_and_restore_a_whole_name(api):
    for v in ("1", "2"):
        put(api, "m", v)
    put(api, "other", "1")
    r = api.http.post(api.url("/models/m/archive"))
    assert r.status_code == 200, r.text
    assert r.json()["archived"] is True

    assert versions_of(api, "m") == []
    assert [m["name"] for m in list_versions(api)] == ["other"]
    assert [m["name"] for m in list_versions(api, list_view_type="ArchivedOnly")] == ["m"]
    assert [m["name"] for m in list_versions(api, list_view_type="All")] == ["m", "other"]
    assert versions_of(api, "m", list_view_type="ArchivedOnly") == ["2", "1"]
    assert get_version(api, "m", "1").json()["archived"] is True

    # A version of an archived name cannot be restored on its own.
    r = api.http.post(api.url("/models/m/restore"), json={"version": "1"})
    assert r.status_code == 409
    err = error_of(r)
    assert err["code"] == "INVALID_STATE" and "restore the name" in err["message"]
    assert versions_of(api, "m") == []

    api.ml.models.restore("m")
    assert versions_of(api, "m") == ["2", "1"]
    assert [m["name"] for m in list_versions(api)] == ["m", "other"]


def test_archive_unknown_name_or_version_is_not_found(api):
    r = api.http.post(api.url("/models/nosuch/archive"))
    assert r.status_code == 404
    put(api, "m", "1")
    r = api.http.post(api.url("/models/m/archive"), json={"version": "2"})
    assert r.status_code == 404 and "'2'" in error_of(r)["message"]
    r = api.http.post(api.url("/models/m/archive"), json={"version": "1", "stage": "x"})
    assert r.status_code == 422
    assert versions_of(api, "m") == ["1"]


def test_bad_list_view_type_is_rejected(api):
    r = api.http.get(api.url("/models"), params={"list_view_type": "Everything"})
    assert r.status_code == 400 and "ActiveOnly" in error_of(r)["message"]


# -- update -----------------------------------------------------------------------------------


def test_only_metadata_can_be_updated(api):
    put(api, "m", "1")
    before = get_version(api, "m", "1").json()

    r = api.http.patch(api.url("/models/m/versions/1"), json={"path": "https://example.com/x.pkl"})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "BAD_REQUEST" and "path" in err["message"]
    r = api.http.patch(api.url("/models/m/versions/1"), json={"description": "new", "type": "mlflow_model"})
    assert r.status_code == 400 and "type" in error_of(r)["message"]
    assert get_version(api, "m", "1").json() == before  # nothing changed, not even description

    r = api.http.patch(
        api.url("/models/m/versions/1"),
        json={"description": "better", "tags": {"team": "b", "n": 3}, "stage": "Production"},
    )
    assert r.status_code == 200, r.text
    after = get_version(api, "m", "1").json()
    assert after["description"] == "better"
    assert after["tags"] == {"team": "b", "n": "3"}
    assert after["stage"] == "Production"
    assert after["path"] == before["path"] and after["version"] == "1"
    assert after["creation_context"]["created_at"] == before["creation_context"]["created_at"]

    # Listing filters by stage.
    put(api, "m", "2")
    assert versions_of(api, "m", stage="Production") == ["1"]


def test_sdk_update_of_a_fetched_model(api):
    api.ml.models.create_or_update(Model(name="m", version="1", path=URL_OF_MODEL))
    fetched = api.ml.models.get("m", version="1")
    fetched.description = "edited"
    fetched.tags = {"k": "v"}
    updated = api.ml.models.create_or_update(fetched)
    assert updated.description == "edited" and updated.tags == {"k": "v"}
    assert api.ml.models.get("m", version="1").description == "edited"


def test_update_of_a_missing_version_is_not_found(api):
    r = api.http.patch(api.url("/models/m/versions/1"), json={"description": "x"})
    assert r.status_code == 404


# -- paging -----------------------------------------------------------------------------------


def test_keyset_paging_of_versions(api):
    for _ in range(25):
        assert post(api, "m").status_code == 200
    pages: list[list[str]] = []
    query: dict[str, Any] = {"name": "m", "max_results": 10}
    while True:
        body = api.http.get(api.url("/models"), params=query).json()
        pages.append([m["version"] for m in body["value"]])
        if not body["next_page_token"]:
            break
        query["page_token"] = body["next_page_token"]
    assert [len(p) for p in pages] == [10, 10, 5]
    flat = [v for p in pages for v in p]
    assert len(set(flat)) == 25
    assert flat == [str(n) for n in range(25, 0, -1)]  # newest first, nothing missing

    # The SDK follows the tokens, and max_results caps the total.
    assert len(list(api.ml.models.list("m"))) == 25
    assert len(list(api.ml.models.list("m", max_results=7))) == 7


def test_list_without_name_gives_one_row_per_name_with_latest_version(api):
    names = [f"model-{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        for _ in range(1 + i % 3):
            post(api, name)
    query: dict[str, Any] = {"max_results": 5}
    seen: list[dict[str, Any]] = []
    pages = 0
    while True:
        body = api.http.get(api.url("/models"), params=query).json()
        seen.extend(body["value"])
        pages += 1
        if not body["next_page_token"]:
            break
        query["page_token"] = body["next_page_token"]
    assert pages == 3
    assert [m["name"] for m in seen] == names
    for i, m in enumerate(seen):
        assert m["latest_version"] == str(1 + i % 3) == m["version"]


def test_bad_page_token_and_page_size_are_rejected(api):
    r = api.http.get(api.url("/models"), params={"page_token": "not!a!token"})
    assert r.status_code == 400 and "page token" in error_of(r)["message"]
    r = api.http.get(api.url("/models"), params={"max_results": 0})
    assert r.status_code == 400 and "max_results" in error_of(r)["message"]


def test_other_asset_kinds_version_the_same_way(api):
    env = {"image": "python:3.11-slim"}
    r1 = api.http.post(api.url("/environments/env/versions"), json=env)
    r2 = api.http.post(api.url("/environments/env/versions"), json={"image": "python:3.12-slim"})
    assert (r1.json()["version"], r2.json()["version"]) == ("1", "2")
    r = api.http.put(api.url("/environments/env/versions/1"), json={"image": "python:3.12-slim"})
    assert r.status_code == 409 and "image" in error_of(r)["message"]
    data = {"type": "uri_file", "path": "https://example.com/d.csv"}
    assert api.http.put(api.url("/data/d/versions/2024.01"), json=data).status_code == 200
    assert api.http.get(api.url("/data/d/labels/latest")).json()["version"] == "2024.01"


def test_latest_of_a_name_archived_as_a_whole_is_not_found(api):
    put(api, "m", "1")
    api.ml.models.archive("m")
    r = latest(api, "m")
    assert r.status_code == 404
    assert "archived" in error_of(r)["message"]
    assert get_version(api, "m", "1").status_code == 200  # still readable by number
    # A reference by label to an archived environment does not resolve either.
    api.http.put(api.url("/environments/env/versions/1"), json={"image": "python:3.11"})
    api.http.post(api.url("/environments/env/archive"))
    r = api.http.put(
        api.url("/components/train/versions/1"),
        json={"command": "echo", "environment": "azureml:env@latest"},
    )
    assert r.status_code == 404 and "env" in error_of(r)["message"]
    api.ml.models.restore("m")
    assert latest(api, "m").json()["version"] == "1"
