"""Many small files at once and large files in parts: the batch format, ``write_many`` /
``read_each`` / ``read_chunks``, and multipart writes that publish only when complete, on local
disk, memory://, S3 (moto) and Azure Blob (Azurite)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import fsspec
import pytest

from shoal.errors import NotFoundError, PayloadTooLargeError, UserError
from shoal.storage import batches
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.objects import ObjectWriter
from tests.conftest import make_backend


@pytest.fixture(params=["local", "memory", "s3", "azure_blob"])
def store(request, tmp_path):
    if request.param in ("s3", "azure_blob"):
        yield make_backend(request, request.param, tmp_path).files()
        return
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    s = ArtifactStore(f"memory://shoal-batch-{uuid.uuid4().hex}")
    yield s
    fsspec.filesystem("memory").rm(s.root, recursive=True)


@pytest.fixture(params=["s3", "azure_blob"])
def cloud_store(request, tmp_path):
    return make_backend(request, request.param, tmp_path).files()


def body(*records: tuple[str, bytes]) -> bytes:
    return b"".join(batches.header(p, len(d)) + d for p, d in records)


# -- the format ---------------------------------------------------------------------------------


def test_a_batch_parses_across_any_chunking():
    data = body(("a.txt", b"alpha"), ("d/b.bin", os.urandom(3000)), ("empty", b""))
    for size in (1, 7, 4096, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert batches.parse_batch(chunks) == batches.parse_batch([data])
    assert [p for p, _ in batches.parse_batch([data])] == ["a.txt", "d/b.bin", "empty"]
    assert batches.parse_batch([]) == []


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        (b'{"path": "a", "size": 5}\nabc', UserError, "ends inside 'a'"),
        (b'{"path": "a", "size"', UserError, "inside its header"),
        (b"not json\n", UserError, "not JSON"),
        (b'["a", 1]\n', UserError, "must be an object"),
        (b'{"path": "../x", "size": 1}\nx', UserError, "record 1"),
        (b'{"path": "a", "size": -1}\n', UserError, "non-negative"),
        (b'{"path": "a", "size": true}\n', UserError, "non-negative"),
        (b'{"path": "a", "size": 1}\nx{"path": "a", "size": 1}\ny', UserError, "appears twice"),
        (b'{"path": "a", "size": 99999999999}\n', PayloadTooLargeError, "on its own"),
        (b"{" + b" " * 5000, UserError, "longer than"),
    ],
)
def test_a_bad_batch_is_refused_naming_the_record(raw, error, words):
    with pytest.raises(error, match=words):
        batches.parse_batch([raw])


def test_a_batch_is_bounded_in_files_and_bytes(monkeypatch):
    monkeypatch.setattr(batches, "MAX_FILES", 3)
    with pytest.raises(PayloadTooLargeError, match="at most 3 files"):
        batches.parse_batch([body(*[(f"f{i}", b"x") for i in range(4)])])
    monkeypatch.setattr(batches, "MAX_TOTAL", 10)
    with pytest.raises(PayloadTooLargeError, match="at most 10 bytes"):
        batches.parse_batch([body(("a", b"x" * 6), ("b", b"y" * 6))])
    with pytest.raises(UserError, match="list of file paths"):
        batches.read_paths({"paths": "a"})


# -- many files at once -------------------------------------------------------------------------


def test_write_many_then_read_each_and_records(store):
    items = [(f"out/d{i % 3}/f{i}.bin", os.urandom(i * 37)) for i in range(70)]
    entries = store.write_many(items)
    assert [(e.path, e.size) for e in entries] == [(p, len(d)) for p, d in items]
    assert {f.path: f.size for f in store.list_files("out")} == {p[4:]: len(d) for p, d in items}
    paths = [p for p, _ in items]
    assert list(store.read_each(paths, batches.MAX_FILE)) == [d for _, d in items]
    got = b"".join(batches.records(store, paths))  # more than CONCURRENCY files: reads overlap the response
    assert batches.parse_batch([got]) == items


def test_a_missing_file_ends_a_batch_read_with_an_error_record(store):
    store.write_many([("a", b"1"), ("c", b"3")])
    out = b"".join(batches.records(store, ["a", "b", "c"]))
    # Each file is sent as soon as it is read: "a" goes out whole, "b" is the error that ends it.
    first = batches.header("a", 1) + b"1"
    assert out.startswith(first)
    [line] = out[len(first) :].splitlines()
    record = json.loads(line)
    assert record["path"] == "b" and record["error"]["code"] == "NOT_FOUND" and "'b'" in record["error"]["message"]


def test_a_file_over_the_batch_limit_is_an_error_record(store, monkeypatch):
    monkeypatch.setattr(batches, "MAX_FILE", 4)
    store.write_many([("big", b"123456789")])
    out = b"".join(batches.records(store, ["big"]))
    assert b"PAYLOAD_TOO_LARGE" in out and b"123456789" not in out


# -- large files --------------------------------------------------------------------------------


def test_read_chunks_from_any_offset(store):
    data = os.urandom(3 * 1024 * 1024 + 5)
    store.write_stream("big.bin", [data])
    size, chunks = store.read_chunks("big.bin")
    assert size == len(data) and b"".join(chunks) == data
    size, chunks = store.read_chunks("big.bin", 1024 * 1024 + 3)
    assert b"".join(chunks) == data[1024 * 1024 + 3 :]
    with pytest.raises(NotFoundError):
        store.read_chunks("nope.bin")


def test_a_multipart_write_publishes_only_when_complete(cloud_store, monkeypatch):
    """Parts of 5 MB (S3's smallest): the object is absent until the last part is in and the
    check passes; a write that fails after several parts leaves nothing, not even a part."""
    from shoal.storage import objects

    monkeypatch.setattr(objects.S3IO, "read_range", 3 * 1024 * 1024)  # reads in several ranges
    monkeypatch.setattr(objects.AzureIO, "read_range", 3 * 1024 * 1024)
    part = 5 * 1024 * 1024
    real = ObjectWriter.__init__
    monkeypatch.setattr(ObjectWriter, "__init__", lambda self, io, full, **kw: real(self, io, full, part_size=part))
    data = os.urandom(4 * part + 123)
    sha = hashlib.sha256(data).hexdigest()

    def chunks(fail: bool = False):
        for i in range(0, len(data), 1024 * 1024):
            yield data[i : i + 1024 * 1024]
            if i > 3 * part:
                assert not cloud_store.exists("big.bin")  # parts are in, nothing is visible
                if fail:
                    raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="went away"):
        cloud_store.write_stream("big.bin", chunks(fail=True))
    with pytest.raises(UserError, match="sha256 mismatch"):
        cloud_store.write_stream("big.bin", chunks(), expected_sha256="0" * 64)
    assert cloud_store.list_files("") == []
    entry = cloud_store.write_stream("big.bin", chunks(), expected_sha256=sha)
    assert entry.size == len(data)
    size, pieces = cloud_store.read_chunks("big.bin")
    assert size == len(data) and hashlib.sha256(b"".join(pieces)).hexdigest() == sha
    if cloud_store.io.__class__.__name__ == "S3IO":  # the aborted uploads are gone too
        bucket, key, _ = cloud_store.fs.split_path(cloud_store.root)
        pending = cloud_store.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
        assert pending.get("Uploads", []) == []


def test_the_first_parts_are_smaller_and_the_object_is_whole(cloud_store):
    """Parts of 5, 10 and 20 MB, then 20 MB each and the rest (a store starts writing after the first part,
    not a whole large part later); chunks of odd sizes cross every part boundary."""
    mb = 1024 * 1024
    writer = ObjectWriter(cloud_store.io, cloud_store._full("grown.bin"), part_size=20 * mb)
    writer.first_part = 5 * mb  # S3's smallest part
    data = os.urandom(57 * mb + 5)
    sizes = []
    real_send = writer._send
    writer._send = lambda part: (sizes.append(len(part)), real_send(part))  # type: ignore[method-assign]
    for i in range(0, len(data), 777_777):
        writer.write(data[i : i + 777_777])
    writer.commit()
    assert sizes == [5 * mb, 10 * mb, 20 * mb, 20 * mb, 2 * mb + 5]  # the last one sent by commit
    size, pieces = cloud_store.read_chunks("grown.bin")
    assert size == len(data) and b"".join(pieces) == data
