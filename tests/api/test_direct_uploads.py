"""A large job output sent by the runner straight to S3 (storage/direct_uploads.py): each part's
PUT signed by the server, the file published by the server only when every part is stored; the
credentials never leave the server; a job token may do it only for its own outputs. Against moto
with signatures enforced."""

from __future__ import annotations

import httpx
import pytest

from shoal.runtime.direct_upload import DirectUploadFailed, send_parts
from shoal.storage import direct_uploads

from .conftest import error_of
from .test_jobs_api import start_attempt, submitted

MIB = 1024 * 1024


@pytest.fixture
def small_parts(monkeypatch):
    """5 MB parts (S3's smallest) instead of 50 MB: three parts from an 11 MB file."""
    monkeypatch.setattr(direct_uploads, "PART_SIZE", 5 * MIB)


def _signer(api, ticket: dict[str, str], headers: dict[str, str] | None = None):
    def sign(number: int) -> tuple[str, dict[str, str]]:
        r = api.anon.post(
            api.url("/datastores/ext/direct-uploads/sign"),
            headers=headers or api.http.headers,
            json={**ticket, "parts": [number]},
        )
        assert r.status_code == 200, r.text
        return r.json()["parts"][0]["url"], r.json()["parts"][0]["headers"]

    return sign


def _listed(api, path: str) -> list[str]:
    r = api.http.get(api.url("/datastores/ext/files"), params={"path": ""})
    return [f["path"] for f in r.json()["value"] if f["path"].startswith(path)]


def test_parts_sent_straight_to_s3_appear_only_when_completed(sqlite_api, moto_s3, tmp_path, small_parts):
    from tests.objstores import Backend

    api = sqlite_api
    backend = Backend("s3", tmp_path / "b", s3=moto_s3)
    assert api.http.put(api.url("/datastores/ext"), json=backend.datastore()).status_code == 200
    source = tmp_path / "big.bin"
    data = bytes(range(256)) * (11 * MIB // 256) + b"tail"
    source.write_bytes(data)
    base = api.url("/datastores/ext/direct-uploads")

    offer = api.http.post(base, json={"path": "out/big.bin", "size": len(data)})
    assert offer.status_code == 200, offer.text
    body = offer.json()
    assert body["part_size"] == 5 * MIB and body["parts"] == 3
    ticket = {"path": "out/big.bin", "upload_id": body["upload_id"]}
    signed = api.http.post(f"{base}/sign", json={**ticket, "parts": [1, 2, 3]})
    assert signed.status_code == 200 and len(signed.json()["parts"]) == 3, signed.text
    assert backend.secret not in signed.text  # a signature, never the key itself
    send_parts(source, len(data), body["part_size"], 3, _signer(api, ticket))
    assert _listed(api, "out/") == []  # every part is stored, and still nothing is visible

    done = api.http.post(f"{base}/complete", json={**ticket, "size": len(data)})
    assert done.status_code == 200, done.text
    assert done.json() == {"path": "out/big.bin", "size": len(data)}
    assert api.http.get(api.url("/datastores/ext/content"), params={"path": "out/big.bin"}).content == data
    source.write_bytes(b"x" * len(data))
    with pytest.raises(DirectUploadFailed, match=r"part \d of 3"):  # a published file's upload takes no part
        send_parts(source, len(data), body["part_size"], 3, _signer(api, ticket))
    assert api.http.get(api.url("/datastores/ext/content"), params={"path": "out/big.bin"}).content == data


def test_a_direct_upload_missing_a_part_publishes_nothing(sqlite_api, moto_s3, tmp_path, small_parts):
    from tests.objstores import Backend

    api = sqlite_api
    backend = Backend("s3", tmp_path / "b", s3=moto_s3)
    assert api.http.put(api.url("/datastores/ext"), json=backend.datastore()).status_code == 200
    base = api.url("/datastores/ext/direct-uploads")
    size = 11 * MIB
    body = api.http.post(base, json={"path": "out/cut.bin", "size": size}).json()
    # A runner that died after its first part: the second and third never came.
    url, headers = _signer(api, {"path": "out/cut.bin", "upload_id": body["upload_id"]})(1)
    assert httpx.put(url, headers=headers, content=b"a" * (5 * MIB)).status_code == 200
    done = api.http.post(f"{base}/complete", json={"path": "out/cut.bin", "upload_id": body["upload_id"], "size": size})
    assert done.status_code == 400, done.text
    assert "nothing was published" in error_of(done)["message"]
    assert _listed(api, "out/") == []
    client = moto_s3.client()

    def unfinished() -> list[object]:
        return client.list_multipart_uploads(Bucket="shoal-tests", Prefix=backend.place).get("Uploads", [])

    assert unfinished() == []  # aborted, not left behind

    # Aborted by the runner: the same.
    body = api.http.post(base, json={"path": "out/gone.bin", "size": size}).json()
    ticket = {"path": "out/gone.bin", "upload_id": body["upload_id"]}
    assert api.http.post(f"{base}/abort", json=ticket).status_code == 204
    assert unfinished() == []


def test_direct_uploads_are_refused_where_they_do_not_apply(sqlite_api):
    """A store that is not S3 says so (the runner then sends the file through the server); bad
    sizes and paths are named."""
    api = sqlite_api
    base = api.url("/datastores/workspaceblobstore/direct-uploads")
    r = api.http.post(base, json={"path": "out/x.bin", "size": 10})
    assert r.status_code == 400 and "account key only" in error_of(r)["message"], r.text
    for body, word in (
        ({"path": "out/x.bin", "size": 0}, "'size'"),
        ({"path": "out/x.bin", "size": "10"}, "'size'"),
        ({"path": "../x.bin", "size": 10}, ".."),
    ):
        r = api.http.post(base, json=body)
        assert r.status_code == 400 and word in error_of(r)["message"], (body, r.text)


def test_a_job_token_starts_direct_uploads_of_its_own_outputs_only(sqlite_api, moto_s3, tmp_path, small_parts):
    from tests.objstores import Backend

    api = sqlite_api
    backend = Backend("s3", tmp_path / "b", s3=moto_s3)
    assert api.http.put(api.url("/datastores/ext"), json=backend.datastore()).status_code == 200
    out = {"type": "uri_folder", "path": "azureml://datastores/ext/paths/results/"}
    a = submitted(api, name="direct-a", outputs={"out": out})["name"]
    tok = start_attempt(api, a)
    base = api.url("/datastores/ext/direct-uploads")
    mine = api.anon.post(base, headers=tok, json={"path": "results/model.bin", "size": 10})
    assert mine.status_code == 200, mine.text
    for path in ("other/model.bin", "model.bin"):
        r = api.anon.post(base, headers=tok, json={"path": path, "size": 10})
        assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED", (path, r.text)
    upload_id = mine.json()["upload_id"]
    for step, extra in (("sign", {"parts": [1]}), ("complete", {"size": 10}), ("abort", {})):
        r = api.anon.post(
            f"{base}/{step}", headers=tok, json={"path": "other/model.bin", "upload_id": upload_id, **extra}
        )
        assert r.status_code == 403, (step, r.text)
    url, headers = _signer(api, {"path": "results/model.bin", "upload_id": upload_id}, tok)(1)
    assert httpx.put(url, headers=headers, content=b"0123456789").status_code == 200
    done = api.anon.post(
        f"{base}/complete", headers=tok, json={"path": "results/model.bin", "upload_id": upload_id, "size": 10}
    )
    assert done.status_code == 200, done.text
    with backend.files().open_read("results/model.bin") as fh:
        assert fh.read() == b"0123456789"
