"""Content-addressed uploads: begin / put_file / commit, validation, dedup and races."""

from __future__ import annotations

import hashlib
import threading
import uuid

import fsspec
import pytest

from shoal.errors import ConflictError, InfraError, NotFoundError, PayloadTooLargeError, UserError
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.hashing import FileEntry, scan_folder, tree_hash
from shoal.storage.uploads import UploadManager, parse_manifest
from tests.conftest import make_backend

# The representative tests also run on real object stores; the rest on local disk and memory://.
ALL_STORES = pytest.mark.parametrize("store", ["local", "memory", "s3", "azure_blob"], indirect=True)


FILES = {"train.py": b"print('hi')\n", "conf/params.yaml": b"lr: 0.1\n", "data/empty.bin": b""}


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param in ("s3", "azure_blob"):  # real servers on 127.0.0.1: moto and Azurite (ALL_STORES)
        yield make_backend(request, request.param, tmp_path).files()
        return
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    s = ArtifactStore(f"memory://shoal-upload-{uuid.uuid4().hex}")
    yield s
    fsspec.filesystem("memory").rm(s.root, recursive=True)


def manifest(name: str = "src", files: dict[str, bytes] = FILES, **extra) -> dict:
    entries = [FileEntry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()]
    body = {"name": name, "files": [e.to_dict() for e in entries], "hash": tree_hash(entries)}
    body.update(extra)
    return body


def upload_all(mgr: UploadManager, upload_id: str, files: dict[str, bytes] = FILES) -> None:
    for path, data in files.items():
        mgr.put_file(upload_id, path, [data[:3], data[3:]])


@ALL_STORES
def test_folder_upload_round_trip(store) -> None:
    mgr = UploadManager(store)
    m = manifest()
    upload_id, final = mgr.begin(m)
    assert upload_id and final == f"LocalUpload/{m['hash']}/src"
    upload_all(mgr, upload_id)
    assert mgr.commit(upload_id) == final
    stored = {f.path: f.size for f in store.list_files(final)}
    assert stored == {p: len(d) for p, d in FILES.items()}
    for path, data in FILES.items():
        with store.open_read(f"{final}/{path}") as fh:
            assert fh.read() == data
    assert store.list_dir(".staging") == []
    if store.is_local:  # the published folder hashes to the manifest hash
        assert tree_hash(scan_folder(store.local_path(final))) == m["hash"]


@ALL_STORES
def test_unchanged_folder_is_stored_once(store) -> None:
    mgr = UploadManager(store)
    upload_id, final = mgr.begin(manifest())
    upload_all(mgr, upload_id)
    mgr.commit(upload_id)
    before = store.list_files("")
    assert mgr.begin(manifest()) == (None, final)
    assert store.list_files("") == before  # nothing new, not even a staging manifest
    other_id, other_final = mgr.begin(manifest(name="renamed"))  # same bytes, another folder name
    assert other_id and other_final == final.rsplit("/", 1)[0] + "/renamed"


def test_file_upload(store) -> None:
    mgr = UploadManager(store)
    m = manifest(name="model.pkl", files={"model.pkl": b"weights"})
    upload_id, final = mgr.begin(m)
    assert final == f"LocalUpload/{m['hash']}/model.pkl"
    mgr.put_file(upload_id, "model.pkl", [b"weights"])
    assert mgr.commit(upload_id) == final
    assert store.isfile(final)
    assert store.list_files(final) == store.list_files(final.rsplit("/", 1)[0])
    assert mgr.begin(m) == (None, final)


@ALL_STORES
def test_same_bytes_as_file_and_as_folder_conflict(store) -> None:
    mgr = UploadManager(store)
    as_file = manifest(name="m", files={"m": b"x"})
    upload_id, _ = mgr.begin(as_file)
    mgr.put_file(upload_id, "m", [b"x"])
    mgr.commit(upload_id)
    with pytest.raises(ConflictError):
        mgr.begin(manifest(name="m", files={"m": b"x"}, kind="folder"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m["files"].append({"path": "../x", "size": 0, "sha256": "0" * 64}), "'../x'"),
        (lambda m: m["files"].append({"path": "/etc/passwd", "size": 0, "sha256": "0" * 64}), "passwd"),
        (lambda m: m["files"].append({"path": "dir/", "size": 0, "sha256": "0" * 64}), "canonical"),
        (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
        (lambda m: m["files"].append({"path": "train.py/x", "size": 0, "sha256": "0" * 64}), "as a folder"),
        (lambda m: m["files"][0].update(size=True), "size"),
        (lambda m: m["files"][0].update(size=-1), "size"),
        (lambda m: m["files"][0].update(sha256="A" * 64), "sha256"),
        (lambda m: m["files"][0].update(sha256="z"), "sha256"),
        (lambda m: m["files"][0].update(size=m["files"][0]["size"] + 1), "does not match"),
        (lambda m: m.update(hash="0" * 64), "does not match"),
        (lambda m: m.update(hash=None), "hash"),
        (lambda m: m.update(name="a/b"), "single"),
        (lambda m: m.update(name=".."), "'..'"),
        (lambda m: m.update(name=""), "empty"),
        (lambda m: m.update(name=None), "name"),
        (lambda m: m.update(files=[]), "non-empty"),
        (lambda m: m.update(files="x"), "non-empty"),
        (lambda m: m["files"].__setitem__(0, "x"), "object"),
        (lambda m: m.update(kind="file"), "kind"),
        (lambda m: m.update(kind="zip"), "kind"),
    ],
)
def test_bad_manifests_rejected(store, mutate, message) -> None:
    m = manifest()
    mutate(m)
    with pytest.raises(UserError, match=message):
        UploadManager(store).begin(m)
    assert store.list_dir(".staging") == []


def test_manifest_limits() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_manifest(manifest(), max_files=2)
    with pytest.raises(PayloadTooLargeError):
        parse_manifest(manifest(), max_total_bytes=5)
    with pytest.raises(UserError, match="object"):
        parse_manifest(["not", "a", "dict"])  # type: ignore[arg-type]


def test_put_file_only_listed_and_verified(store) -> None:
    mgr = UploadManager(store)
    upload_id, _ = mgr.begin(manifest())
    with pytest.raises(UserError, match="not listed"):
        mgr.put_file(upload_id, "extra.py", [b"x"])
    with pytest.raises(UserError, match="sha256 mismatch"):
        mgr.put_file(upload_id, "train.py", [b"print('HI')\n"])
    with pytest.raises(UserError, match="size mismatch"):
        mgr.put_file(upload_id, "train.py", [b"print('hi')\n!!"])
    with pytest.raises(UserError):
        mgr.put_file(upload_id, "../train.py", [b"x"])
    assert mgr.missing(upload_id) == sorted(FILES)
    assert all(".shoal-tmp" not in f.path for f in store.list_files(".staging"))


@ALL_STORES
def test_commit_with_missing_file_publishes_nothing(store) -> None:
    mgr = UploadManager(store)
    upload_id, final = mgr.begin(manifest())
    mgr.put_file(upload_id, "train.py", [FILES["train.py"]])
    with pytest.raises(UserError, match="missing 2 file") as info:
        mgr.commit(upload_id)
    assert "'conf/params.yaml'" in str(info.value) and "'data/empty.bin'" in str(info.value)
    assert info.value.details["missing"] == ["conf/params.yaml", "data/empty.bin"]
    assert not store.exists(final)
    upload_all(mgr, upload_id)  # the client can finish and retry
    assert mgr.commit(upload_id) == final


def test_upload_ids_are_validated(store) -> None:
    mgr = UploadManager(store)
    for bad in ["../x", "", "A" * 32, "0" * 31, None]:
        with pytest.raises(UserError, match="upload id"):
            mgr.put_file(bad, "train.py", [b""])  # type: ignore[arg-type]
        with pytest.raises(UserError, match="upload id"):
            mgr.commit(bad)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        mgr.commit(uuid.uuid4().hex)


def test_manifest_is_read_back_by_another_manager(store) -> None:
    upload_id, final = UploadManager(store).begin(manifest())
    other = UploadManager(store)  # e.g. another server worker: nothing cached
    upload_all(other, upload_id)
    assert other.commit(upload_id) == final
    with pytest.raises(NotFoundError):
        other.put_file(upload_id, "train.py", [FILES["train.py"]])


def test_corrupt_manifest_is_infra_error(store) -> None:
    upload_id, _ = UploadManager(store).begin(manifest())
    store.write_stream(f".staging/{upload_id}/manifest.json", [b"{not json"])
    with pytest.raises(InfraError):
        UploadManager(store).commit(upload_id)


def test_concurrent_commits_of_same_content_make_one_folder(store) -> None:
    mgr = UploadManager(store)
    ids = []
    for _ in range(4):
        upload_id, final = mgr.begin(manifest())
        upload_all(mgr, upload_id)
        ids.append(upload_id)
    barrier = threading.Barrier(len(ids))
    results, errors = [], []

    def commit(upload_id: str) -> None:
        barrier.wait()
        try:
            results.append(mgr.commit(upload_id))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [final] * len(ids)
    assert store.list_dir(final.rsplit("/", 1)[0]) == ["src"]
    assert {f.path for f in store.list_files(final)} == set(FILES)  # not nested, not duplicated
    assert store.list_dir(".staging") == []


def test_abort_and_gc(store) -> None:
    mgr = UploadManager(store)
    a, _ = mgr.begin(manifest())
    b, _ = mgr.begin(manifest())
    mgr.put_file(a, "train.py", [FILES["train.py"]])
    mgr.abort(a)
    mgr.abort(a)  # idempotent
    assert store.list_dir(".staging") == [b]
    assert mgr.gc(older_than_seconds=3600) == 0
    assert mgr.gc(older_than_seconds=-1) == 1
    assert store.list_dir(".staging") == []
    with pytest.raises(NotFoundError):
        mgr.put_file(b, "train.py", [FILES["train.py"]])
