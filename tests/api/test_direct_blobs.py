"""Azure Blob files the runner moves itself (storage/direct_blobs.py): small inputs read and small
outputs written with a URL the server signs for each blob, large outputs staged in blocks and
committed by the server; the account key never leaves the server, a signed URL reaches its own
blob only and only for a while, and a job token gets URLs for its own inputs and outputs only.
Against a real Azurite, with the runner's own client on the app served over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shoal.runtime.client import RunnerClient
from shoal.storage import direct_blobs

from .conftest import error_of
from .test_jobs_api import start_attempt, submitted

MIB = 1024 * 1024


@pytest.fixture
def ext(sqlite_api, azurite, tmp_path):
    """A datastore ``ext`` on a fresh Azurite container, with the account key."""
    from tests.objstores import Backend

    backend = Backend("azure_blob", tmp_path / "b", azurite=azurite)
    r = sqlite_api.http.put(sqlite_api.url("/datastores/ext"), json=backend.datastore())
    assert r.status_code == 200, r.text
    return backend


@pytest.fixture
def served(sqlite_api) -> Iterator[tuple[str, list[str]]]:
    """The app on a real port (the runner's client speaks HTTP), and the paths of the requests it
    was sent, in order: what went through the server and what did not."""
    import uvicorn

    from tests.objstores import free_port

    seen: list[str] = []

    async def recorder(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"].rsplit("/datastores/ext/", 1)[-1])
        await sqlite_api.app(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", seen
    server.should_exit = True
    thread.join(10)


def _committed_blocks(ext, rel: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(ext.azurite.connection_string()) as service:
        committed, _ = service.get_blob_client(ext.place, rel).get_block_list("committed")
    return [b.id for b in committed]


def test_a_runner_moves_small_and_large_files_straight_to_and_from_azurite(
    sqlite_api, ext, served, tmp_path, monkeypatch
):
    monkeypatch.setattr(direct_blobs, "AZURE_PART_SIZE", MIB)  # blocks of 1 MB: 3 for the large file
    url, seen = served
    files = ext.files()
    inputs = {f"data/d{i % 3}/f{i:03d}.bin": bytes([i % 256]) * (100 + i) for i in range(300)}
    for rel, data in inputs.items():
        files.write_stream(rel, [data])
    runner = RunnerClient(url, sqlite_api.token, "default", "j", None)

    listing = runner.list_files("ext", "data")
    items = [(f"data/{f['path']}", tmp_path / "in" / f["path"], f["size"]) for f in listing["value"]]
    runner.download_many("ext", items)
    assert {path: target.read_bytes() for path, target, _ in items} == inputs
    assert "contents/read" not in seen and seen.count("direct-reads") == 2  # 300 files: 2 batches of URLs

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_bytes(b"a")
    (out / "sub" / "b.txt").write_bytes(b"b" * 5000)
    big = bytes(range(256)) * (3 * MIB // 256) + b"tail"  # just over 3 blocks
    (out / "big.bin").write_bytes(big)
    seen.clear()
    assert runner.upload_tree("ext", "results/up", out, sorted(p for p in out.rglob("*") if p.is_file())) == 3
    assert "contents" not in seen and "content" not in seen, seen  # nothing went through the server
    assert sorted(seen) == sorted(
        ["direct-writes", "direct-uploads", *["direct-uploads/sign"] * 4, "direct-uploads/complete"]
    )
    for rel, data in (("results/up/a.txt", b"a"), ("results/up/sub/b.txt", b"b" * 5000), ("results/up/big.bin", big)):
        with files.open_read(rel) as fh:
            assert fh.read() == data, rel
    # The large file is the 4 blocks the runner staged, committed by the server.
    assert len(_committed_blocks(ext, "results/up/big.bin")) == 4
    listed = sqlite_api.http.get(sqlite_api.url("/datastores/ext/files"), params={"path": "results/up"}).json()
    assert sorted(f["path"] for f in listed["value"]) == ["a.txt", "big.bin", "sub/b.txt"]  # files, not folders


def test_a_signed_url_reaches_its_own_blob_only_and_never_carries_the_key(sqlite_api, ext, tmp_path):
    files = ext.files()
    files.write_stream("data/a.txt", [b"A"])
    files.write_stream("data/b.txt", [b"B"])
    reads = sqlite_api.http.post(sqlite_api.url("/datastores/ext/direct-reads"), json={"paths": ["data/a.txt"]})
    assert reads.status_code == 200, reads.text
    assert ext.secret not in reads.text
    a_url = reads.json()["value"][0]["url"]
    assert httpx.get(a_url).content == b"A"
    other = httpx.get(a_url.replace("/data/a.txt?", "/data/b.txt?"))  # another blob, the same signature
    assert other.status_code == 403
    assert httpx.put(a_url, content=b"x", headers=direct_blobs.PUT_HEADERS).status_code == 403  # read only

    writes = sqlite_api.http.post(
        sqlite_api.url("/datastores/ext/direct-writes"), json={"prefix": "results", "paths": ["w.txt"]}
    )
    assert writes.status_code == 200, writes.text
    body = writes.json()
    assert body["value"][0]["path"] == "results/w.txt" and ext.secret not in writes.text
    w_url = body["value"][0]["url"]
    assert httpx.put(w_url, content=b"W", headers=body["headers"]).status_code == 201
    with files.open_read("results/w.txt") as fh:
        assert fh.read() == b"W"
    elsewhere = httpx.put(w_url.replace("/results/w.txt?", "/data/a.txt?"), content=b"x", headers=body["headers"])
    assert elsewhere.status_code == 403
    with files.open_read("data/a.txt") as fh:
        assert fh.read() == b"A"

    # Expired: the same kind of URL, signed a minute in the past.
    expired = files.io.rest.signed_url(ext.place, "data/a.txt", "r", -60)
    assert httpx.get(expired).status_code == 403


def test_signed_urls_only_where_an_account_key_signs_them(sqlite_api, ext, azurite, tmp_path):
    """A datastore holding a SAS token (which reaches its whole container, so is never handed on)
    and local disk give none: the runner then goes through the server. Bad bodies are named."""
    from tests.objstores import Backend

    sas = Backend("azure_blob", tmp_path / "s", azurite=azurite)
    assert (
        sqlite_api.http.put(sqlite_api.url("/datastores/sas"), json=sas.datastore(credentials="sas")).status_code == 200
    )
    for name in ("sas", "workspaceblobstore"):
        for kind in ("direct-reads", "direct-writes"):
            r = sqlite_api.http.post(sqlite_api.url(f"/datastores/{name}/{kind}"), json={"paths": ["a.txt"]})
            assert r.status_code == 400 and "account key" in error_of(r)["message"], (name, kind, r.text)
    r = sqlite_api.http.post(sqlite_api.url("/datastores/sas/direct-uploads"), json={"path": "a.bin", "size": 10})
    assert r.status_code == 400, r.text
    for body, word in (
        ({"paths": []}, "'paths'"),
        ({"paths": "a.txt"}, "'paths'"),
        ({"paths": ["../a.txt"]}, ".."),
        ({"paths": ["a"] * 2001}, "at most"),
    ):
        r = sqlite_api.http.post(sqlite_api.url("/datastores/ext/direct-reads"), json=body)
        assert r.status_code == 400 and word in error_of(r)["message"], (body, r.text)


def test_nothing_is_visible_before_the_server_commits_the_blocks(sqlite_api, ext, tmp_path, monkeypatch):
    monkeypatch.setattr(direct_blobs, "AZURE_PART_SIZE", MIB)
    api = sqlite_api
    base = api.url("/datastores/ext/direct-uploads")
    size = 2 * MIB + 10
    offer = api.http.post(base, json={"path": "out/big.bin", "size": size})
    assert offer.status_code == 200, offer.text
    assert offer.json()["part_size"] == MIB and offer.json()["parts"] == 3
    ticket = {"path": "out/big.bin", "upload_id": offer.json()["upload_id"]}
    signed = api.http.post(f"{base}/sign", json={**ticket, "parts": [1, 2, 3]})
    assert signed.status_code == 200 and ext.secret not in signed.text
    parts = signed.json()["parts"]
    for part, length in zip(parts[:2], (MIB, MIB), strict=True):
        assert httpx.put(part["url"], content=b"p" * length, headers=part["headers"]).status_code == 201

    def listed() -> list[str]:
        return [f["path"] for f in api.http.get(api.url("/datastores/ext/files"), params={"path": ""}).json()["value"]]

    assert listed() == []  # two blocks staged: nothing under the name
    short = api.http.post(f"{base}/complete", json={**ticket, "size": size})
    assert short.status_code == 400 and "nothing was published" in error_of(short)["message"], short.text
    assert listed() == []
    # A block URL is for its own block of its own blob.
    other = parts[2]["url"].replace("/out/big.bin?", "/out/other.bin?")
    assert httpx.put(other, content=b"p" * 10).status_code == 403
    assert httpx.put(parts[2]["url"], content=b"p" * 10).status_code == 201
    done = api.http.post(f"{base}/complete", json={**ticket, "size": size})
    assert done.status_code == 200, done.text
    with ext.files().open_read("out/big.bin") as fh:
        assert fh.read() == b"p" * size
    wrong = api.http.post(f"{base}/complete", json={**ticket, "upload_id": "not-an-upload", "size": size})
    assert wrong.status_code == 400 and "upload_id" in error_of(wrong)["message"]


def test_a_job_token_gets_urls_for_its_own_inputs_and_outputs_only(sqlite_api, ext):
    api = sqlite_api
    ext.files().write_stream("data/x.csv", [b"x"])
    ext.files().write_stream("secret/y.csv", [b"y"])
    asset = {"type": "uri_folder", "path": "azureml://datastores/ext/paths/data/"}
    assert api.http.put(api.url("/data/dd/versions/1"), json=asset).status_code == 200
    spec = {
        "inputs": {"d": {"type": "uri_folder", "path": "azureml:dd:1"}},  # resolved to its datastore path
        "outputs": {"out": {"type": "uri_folder", "path": "azureml://datastores/ext/paths/results/a/"}},
    }
    a = submitted(api, name="direct-blob-a", **spec)["name"]
    b = submitted(
        api,
        name="direct-blob-b",
        outputs={"out": {"type": "uri_folder", "path": "azureml://datastores/ext/paths/results/b/"}},
    )["name"]
    tok_a, tok_b = start_attempt(api, a), start_attempt(api, b)
    reads, writes = api.url("/datastores/ext/direct-reads"), api.url("/datastores/ext/direct-writes")
    mine = api.anon.post(reads, headers=tok_a, json={"paths": ["data/x.csv"]})
    assert mine.status_code == 200 and httpx.get(mine.json()["value"][0]["url"]).content == b"x"
    for tok, paths in ((tok_a, ["data/x.csv", "secret/y.csv"]), (tok_b, ["data/x.csv"])):
        r = api.anon.post(reads, headers=tok, json={"paths": paths})
        assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED", r.text
    assert api.anon.post(writes, headers=tok_a, json={"prefix": "results/a", "paths": ["m.bin"]}).status_code == 200
    for tok, body in (
        (tok_b, {"prefix": "results/a", "paths": ["m.bin"]}),  # another job's output
        (tok_a, {"prefix": "results", "paths": ["b/m.bin"]}),
        (tok_a, {"paths": ["results/b/m.bin"]}),
    ):
        r = api.anon.post(writes, headers=tok, json=body)
        assert r.status_code == 403 and error_of(r)["code"] == "PERMISSION_DENIED", (body, r.text)
    r = api.anon.post(api.url("/datastores/ext/direct-uploads"), headers=tok_b, json={"path": "results/a/m", "size": 9})
    assert r.status_code == 403


def test_the_run_spec_says_where_a_runner_moves_files_itself_and_it_asks_nowhere_else(
    sqlite_api, ext, served, tmp_path
):
    api = sqlite_api
    on_ext = submitted(
        api,
        name="direct-offers-ext",
        inputs={"d": {"type": "uri_folder", "path": "azureml://datastores/ext/paths/data/"}},
        outputs={"out": {"type": "uri_folder", "path": "azureml://datastores/ext/paths/results/o/"}},
    )["name"]
    local = submitted(
        api,
        name="direct-offers-local",
        outputs={"out": {"type": "uri_folder", "path": "azureml://datastores/workspaceblobstore/paths/o/"}},
    )["name"]
    spec_of = {}
    for name in (on_ext, local):
        tok = start_attempt(api, name)
        r = api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=tok)
        assert r.status_code == 200, r.text
        spec_of[name] = r.json()["direct"]
    # Azure Blob with the account key offers both; the local stores (outputs, artifacts) neither.
    # Small files are written through the server, whose batches beat one PUT each on Azurite.
    assert spec_of[on_ext] == {"small": ["ext"], "large": ["ext"], "small_writes": []}
    assert spec_of[local] == {"small": [], "large": [], "small_writes": []}
    # A runner told so never asks a datastore that offers nothing for signed URLs or parts.
    url, seen = served
    ext.files().write_stream("data/x.csv", [b"x"])
    runner = RunnerClient(url, api.token, "default", "j", None)
    runner.offered({"small": [], "large": []})
    seen.clear()
    runner.download_many("ext", [("data/x.csv", tmp_path / "got" / "x.csv", 1)])
    assert (tmp_path / "got" / "x.csv").read_bytes() == b"x"
    assert seen == ["contents/read"], seen
    runner.offered(spec_of[on_ext])
    seen.clear()
    runner.download_many("ext", [("data/x.csv", tmp_path / "again" / "x.csv", 1)])
    assert seen == ["direct-reads"], seen
    seen.clear()
    runner.upload_batch("ext", "results/o", [("m.txt", tmp_path / "again" / "x.csv")])
    assert seen == ["contents"], seen
