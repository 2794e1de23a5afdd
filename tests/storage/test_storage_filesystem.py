"""ArtifactStore: atomic writes, verification, listing, publishing, local and memory:// roots."""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import uuid

import fsspec
import pytest

from shoal.errors import (
    ConflictError,
    InfraError,
    NotFoundError,
    PayloadTooLargeError,
    StorageFullError,
    UnsupportedError,
    UserError,
    error_from_wire,
    storage_full_from,
)
from shoal.storage.filesystem import TMP_PREFIX, ArtifactStore, StoredFile
from shoal.storage.hashing import FileEntry
from tests.conftest import make_backend

# The representative tests also run on real object stores; the rest on local disk and memory://.
ALL_STORES = pytest.mark.parametrize("store", ["local", "memory", "s3", "azure_blob"], indirect=True)


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param in ("s3", "azure_blob"):  # real servers on 127.0.0.1: moto and Azurite (ALL_STORES)
        yield make_backend(request, request.param, tmp_path).files()
        return
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    root = f"memory://shoal-test-{uuid.uuid4().hex}"
    s = ArtifactStore(root)
    yield s
    fsspec.filesystem("memory").rm(s.root, recursive=True)


def _all_names(store: ArtifactStore) -> list[str]:
    if store.is_local:
        return sorted(os.path.relpath(os.path.join(d, f), store.root) for d, _, fs in os.walk(store.root) for f in fs)
    return sorted(p[len(store.root) + 1 :] for p in store.fs.find(store.root))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@ALL_STORES
def test_write_read_round_trip(store) -> None:
    entry = store.write_stream("a/b/c.txt", [b"hello ", b"world"])
    assert entry == FileEntry("a/b/c.txt", 11, sha(b"hello world"))
    with store.open_read("a/b/c.txt") as fh:
        assert fh.read() == b"hello world"
    assert store.exists("a/b/c.txt") and store.isfile("a/b/c.txt") and not store.isdir("a/b/c.txt")
    assert store.isdir("a/b") and store.exists("")
    assert _all_names(store) == ["a/b/c.txt"]


def test_overwrite_replaces_whole_file(store) -> None:
    store.write_stream("f", [b"old content"])
    store.write_stream("f", [b"new"])
    with store.open_read("f") as fh:
        assert fh.read() == b"new"


@ALL_STORES
def test_failure_mid_stream_leaves_nothing(store) -> None:
    store.write_stream("keep.txt", [b"previous"])

    def chunks():
        yield b"partial data"
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="went away"):
        store.write_stream("keep.txt", chunks())
    with pytest.raises(RuntimeError):
        store.write_stream("new/file.txt", chunks())
    assert not store.exists("new/file.txt")
    with store.open_read("keep.txt") as fh:
        assert fh.read() == b"previous"  # the old version is intact, not half-replaced
    assert not any(TMP_PREFIX in n for n in _all_names(store))


def test_sha_and_size_mismatch_rejected(store) -> None:
    with pytest.raises(UserError, match="sha256 mismatch"):
        store.write_stream("x", [b"abc"], expected_sha256=sha(b"abd"))
    with pytest.raises(UserError, match="size mismatch"):
        store.write_stream("x", [b"abc"], expected_size=4)
    with pytest.raises(UserError, match="size mismatch"):
        store.write_stream("x", [b"abc", b"def"], expected_size=4)  # cut off while streaming
    with pytest.raises(PayloadTooLargeError):
        store.write_stream("x", [b"abc"], max_bytes=2)
    with pytest.raises(UserError, match="invalid sha256"):
        store.write_stream("x", [b"abc"], expected_sha256="nothex")
    with pytest.raises(UserError, match="not bytes"):
        store.write_stream("x", ["text"])  # type: ignore[list-item]
    assert not store.exists("x")
    assert _all_names(store) == []
    entry = store.write_stream("x", [b"abc"], expected_sha256=sha(b"abc").upper(), expected_size=3)
    assert entry.sha256 == sha(b"abc")


def test_enospc_becomes_storage_full_and_temp_is_removed(tmp_path, monkeypatch) -> None:
    store = ArtifactStore(str(tmp_path))
    real_sink = store._sink

    class Full:
        def __init__(self, sink):
            self.sink = sink

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def commit(self):
            self.sink.commit()

        def abort(self):
            self.sink.abort()

    monkeypatch.setattr(store, "_sink", lambda final: Full(real_sink(final)))
    with pytest.raises(StorageFullError, match="artifact storage is full") as caught:
        store.write_stream("big.bin", [b"x" * 10])
    assert isinstance(caught.value, InfraError) and caught.value.http_status == 507
    assert _all_names(store) == []


def test_a_full_disk_met_outside_the_store_is_still_named() -> None:
    """The server's last-resort handlers use this: ENOSPC anywhere in the chain, not a bare 500."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("copy failed") from exc
    except RuntimeError as outer:
        full = storage_full_from(outer)
    assert full is not None and full.code == "STORAGE_FULL" and "no space left" in full.message
    assert storage_full_from(OSError(errno.EACCES, "denied")) is None
    assert error_from_wire(full.to_wire(), 507).__class__ is StorageFullError


@ALL_STORES
def test_write_onto_folder_or_under_file_is_user_error(store) -> None:
    store.write_stream("d/f", [b"1"])
    with pytest.raises(UserError):
        store.write_stream("d", [b"2"])
    if store.is_local:  # object stores have no real folders, so "f/g" next to "f" is allowed there
        with pytest.raises(UserError):
            store.write_stream("d/f/g", [b"3"])


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a//b", "%2e%2e/x", f"a/{TMP_PREFIX}x"])
def test_every_method_validates_paths(store, bad) -> None:
    for call in (
        lambda: store.write_stream(bad, [b""]),
        lambda: store.open_read(bad),
        lambda: store.exists(bad),
        lambda: store.isdir(bad),
        lambda: store.list_files(bad),
        lambda: store.remove(bad),
        lambda: store.rename("a", bad),
        lambda: store.rename(bad, "a"),
        lambda: store.publish_dir(bad, "a"),
        lambda: store.local_path(bad),
    ):
        with pytest.raises(UserError):
            call()


@ALL_STORES
def test_list_files(store) -> None:
    assert store.list_files("") == []
    store.write_stream("run/outputs/model/MLmodel", [b"m"])
    store.write_stream("run/outputs/model/data/w.bin", [b"www"])
    store.write_stream("run/logs/std.txt", [b"ll"])
    assert store.list_files("run/outputs") == [
        StoredFile("model/MLmodel", 1),
        StoredFile("model/data/w.bin", 3),
    ]
    assert store.list_files("run/outputs/model/data/w.bin") == [StoredFile("w.bin", 3)]
    assert [f.path for f in store.list_files("")] == [
        "run/logs/std.txt",
        "run/outputs/model/MLmodel",
        "run/outputs/model/data/w.bin",
    ]
    assert store.list_dir("run") == ["logs", "outputs"]
    assert store.list_dir("nothing") == []
    with pytest.raises(NotFoundError):
        store.list_files("run/missing")


@ALL_STORES
def test_list_tree_says_folder_or_file(store) -> None:
    """One listing answers a folder's files and that it is a folder; a file, an empty folder
    (adlfs's marker on Azure) and a missing name are told apart where nothing is below the name."""
    assert store.list_tree("") == (True, [])
    store.write_stream("inputs/a.txt", [b"a"])
    store.write_stream("inputs/sub/b.txt", [b"bb"])
    if not store.is_local:  # a write cut off (fsspec's temporary name) is never listed
        store.fs.pipe_file(f"{store.root}/inputs/sub/{TMP_PREFIX}x", b"t")
    assert store.list_tree("inputs") == (True, [StoredFile("a.txt", 1), StoredFile("sub/b.txt", 2)])
    assert store.list_tree("inputs/sub/b.txt") == (False, [StoredFile("b.txt", 2)])
    assert store.list_tree("") == (True, [StoredFile("inputs/a.txt", 1), StoredFile("inputs/sub/b.txt", 2)])
    if store.io is not None and "abfs" in store.fs.protocol:
        store.fs.makedirs(f"{store.root}/empty/folder", exist_ok=True)
        store.fs.touch(f"{store.root}/marked", metadata={"is_directory": "true"})
        assert store.list_tree("marked") == (True, [])
        assert [f.path for f in store.list_files("")] == ["inputs/a.txt", "inputs/sub/b.txt"]
        store.io.rest = None  # as with an Azure AD identity: the SDK's listing
        assert store.list_tree("inputs") == (True, [StoredFile("a.txt", 1), StoredFile("sub/b.txt", 2)])
        assert [f.path for f in store.list_files("")] == ["inputs/a.txt", "inputs/sub/b.txt"]
    with pytest.raises(NotFoundError):
        store.list_tree("inputs/missing")


def test_open_read_errors(store) -> None:
    store.write_stream("d/f", [b"1"])
    with pytest.raises(NotFoundError):
        store.open_read("d/missing")
    with pytest.raises(UserError, match="folder"):
        store.open_read("d")


@ALL_STORES
def test_remove_and_rename(store) -> None:
    store.write_stream("a/1", [b"1"])
    store.write_stream("a/2", [b"2"])
    store.write_stream("b", [b"b"])
    store.rename("b", "c/b")
    assert not store.exists("b") and store.exists("c/b")
    with pytest.raises(ConflictError):
        store.rename("a/1", "a/2")
    with pytest.raises(NotFoundError):
        store.rename("zzz", "yyy")
    store.rename("a", "moved")
    assert [f.path for f in store.list_files("moved")] == ["1", "2"]
    store.remove("moved/1")
    store.remove("moved")
    assert not store.exists("moved")
    with pytest.raises(NotFoundError):
        store.remove("moved")


@ALL_STORES
def test_publish_dir_first_wins(store) -> None:
    store.write_stream("stage1/x/f.txt", [b"v1"])
    store.write_stream("stage2/x/f.txt", [b"v1"])
    assert store.publish_dir("stage1", "final/h") is True
    assert store.publish_dir("stage2", "final/h") is False
    assert not store.exists("stage1") and not store.exists("stage2")
    assert store.list_files("final/h") == [StoredFile("x/f.txt", 2)]
    store.write_stream("stage3/file.bin", [b"z"])
    assert store.publish_dir("stage3/file.bin", "final/g/file.bin") is True
    store.write_stream("stage4/file.bin", [b"z"])
    assert store.publish_dir("stage4/file.bin", "final/g/file.bin") is False
    assert store.list_files("final/g") == [StoredFile("file.bin", 1)]
    with pytest.raises(NotFoundError):
        store.publish_dir("stage9", "final/i")


def test_local_path(tmp_path) -> None:
    store = ArtifactStore(str(tmp_path / "art"))
    assert store.local_path("a/b") == (tmp_path / "art" / "a" / "b").resolve()
    assert store.local_path("") == (tmp_path / "art").resolve()
    assert ArtifactStore(f"memory://{uuid.uuid4().hex}").local_path("a") is None


def test_file_url_root(tmp_path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/furl")
    assert store.is_local
    store.write_stream("x.txt", [b"x"])
    assert (tmp_path / "furl" / "x.txt").read_bytes() == b"x"


def test_symlink_escapes_are_refused(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"canary")
    store = ArtifactStore(str(tmp_path / "art"))
    os.symlink(outside, tmp_path / "art" / "link")
    os.symlink(outside / "secret", tmp_path / "art" / "file-link")
    for call in (
        lambda: store.open_read("link/secret"),
        lambda: store.write_stream("link/new", [b"x"]),
        lambda: store.list_files("link"),
        lambda: store.remove("link/secret"),
        lambda: store.open_read("file-link"),
    ):
        with pytest.raises(UserError):
            call()
    assert store.list_files("") == []  # planted links are neither followed nor listed
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"canary"


@ALL_STORES
def test_sweep_temp_files(store) -> None:
    store.write_stream("d/f", [b"1"])
    leftover = f"{store.root}/d/{TMP_PREFIX}{uuid.uuid4().hex}"
    with store.fs.open(leftover, "wb") as fh:
        fh.write(b"half")
    assert store.list_files("d") == [StoredFile("f", 1)]  # temp files are never listed
    assert store.sweep_temp_files(older_than_seconds=3600) == 0
    assert store.sweep_temp_files(older_than_seconds=-10) == 1
    assert _all_names(store) == ["d/f"]


def test_unknown_protocol_is_unsupported() -> None:
    with pytest.raises(UserError):
        ArtifactStore("nosuchproto://bucket/x")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_root_without_driver_says_what_to_install() -> None:
    with pytest.raises(UnsupportedError, match=r"shoal\[s3\]"):
        ArtifactStore("s3://bucket/prefix")
