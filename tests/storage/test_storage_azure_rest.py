"""Azure Blob's small objects and blocks as plain signed requests (storage/azure_rest.py), against
a real Azurite: what they write is what the SDK reads back (and the other way round), with each
kind of credential; refused keys, missing blobs and empty blobs give the same errors as the SDK."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from shoal.errors import NotFoundError, PermissionDeniedError
from shoal.storage.datastores import resolve_datastore_fs
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.objects import ObjectWriter
from tests.objstores import AZURITE_ACCOUNT, AZURITE_KEY


def _store(azurite: Any, container: str, credentials: dict[str, str]) -> ArtifactStore:
    spec = {"name": "blobs", "account_name": AZURITE_ACCOUNT, "container_name": container, "endpoint": azurite.endpoint}
    fs, root = resolve_datastore_fs("azure_blob", spec, {"credentials": credentials}, artifact_root="", workspace="w")
    return ArtifactStore(root, fs=fs, label="datastore 'blobs'", hide=list(credentials.values()))


def _container_client(azurite: Any, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite.connection_string()).get_container_client(container)


@pytest.mark.parametrize("credentials", ["key", "sas", "connection_string"])
def test_signed_calls_write_and_read_what_the_sdk_does(azurite, credentials):
    container = azurite.new_container()
    creds = {
        "key": {"account_key": AZURITE_KEY},
        "sas": {"sas_token": azurite.sas_token(container)},
        "connection_string": {"connection_string": azurite.connection_string()},
    }[credentials]
    store = _store(azurite, container, creds)
    assert store.io.rest is not None  # the plain requests, not the SDK
    files = [
        ("a/plain.bin", b"x" * 4096),
        ("a/with space+plus %.txt", b"hello"),
        ("a/\u00e9t\u00e9.txt", b""),
        ("b", b"1"),
    ]
    store.write_many(files)
    client = _container_client(azurite, container)
    for rel, data in files:
        blob = client.get_blob_client(rel)
        assert blob.download_blob().readall() == data
        assert blob.get_blob_properties().metadata == {}  # as azure-storage-blob writes them
        assert store.fs.isfile(f"{store.root}/{rel}")  # and adlfs reads them as files
    client.upload_blob("c/from-sdk.bin", b"0123456789" * 1000)
    rels = [rel for rel, _ in files] + ["c/from-sdk.bin"]
    got = list(store.read_each(rels, 8 * 1024 * 1024))
    assert got == [data for _, data in files] + [b"0123456789" * 1000]
    assert list(store.read_each(["c/from-sdk.bin"], 10)) == [b"0123456789" + b"0"]  # bounded: limit + 1
    assert sorted(e.path for e in store.list_files("a")) == sorted(r[2:] for r, _ in files[:3])


def test_blocks_become_the_blob_only_when_committed(azurite):
    container = azurite.new_container()
    store = _store(azurite, container, {"account_key": AZURITE_KEY})
    writer = ObjectWriter(store.io, f"{container}/big.bin", part_size=1024 * 1024)
    body = bytes(range(256)) * 4096 * 3  # 3 MB: three blocks
    for i in range(0, len(body), 100_000):
        writer.write(body[i : i + 100_000])
    client = _container_client(azurite, container)
    assert not client.get_blob_client("big.bin").exists()  # staged, not committed
    writer.commit()
    assert client.get_blob_client("big.bin").download_blob().readall() == body
    size, chunks = store.read_chunks("big.bin", 1000)
    assert size == len(body) and b"".join(chunks) == body[1000:]


def test_a_refused_key_or_sas_and_a_missing_blob_are_the_same_errors_as_with_the_sdk(azurite):
    container = azurite.new_container()
    wrong = AZURITE_KEY[:-8] + "AAAAAAA="
    store = _store(azurite, container, {"account_key": wrong})
    with pytest.raises(PermissionDeniedError) as refused:
        store.write_many([("x.bin", b"data")])
    assert "datastore 'blobs'" in refused.value.message and "credentials" in refused.value.message
    assert wrong not in refused.value.message
    other = azurite.new_container()
    sas = azurite.sas_token(other)  # signed for another container: refused here
    store = _store(azurite, container, {"sas_token": sas})
    with pytest.raises(PermissionDeniedError) as refused:
        list(store.read_each(["x.bin"], 100))
    signature = urllib.parse.unquote(dict(urllib.parse.parse_qsl(sas))["sig"])
    assert "datastore 'blobs'" in refused.value.message and signature not in refused.value.message
    assert dict(urllib.parse.parse_qsl(sas))["sig"] not in refused.value.message
    good = _store(azurite, container, {"account_key": AZURITE_KEY})
    with pytest.raises(NotFoundError):
        list(good.read_each(["absent.bin"], 100))


def test_an_azure_ad_identity_stays_with_the_sdk(azurite):
    store = _store(azurite, "anything", {})
    assert store.io.rest is None
