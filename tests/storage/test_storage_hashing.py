"""Content hashes: stable across mtimes, sensitive to names and bytes, safe folder scans."""

from __future__ import annotations

import hashlib
import os

import pytest

from shoal.errors import NotFoundError, UserError
from shoal.storage.hashing import FileEntry, file_sha256, scan_file, scan_folder, tree_hash


def _tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_scan_folder_sorted_posix_entries(tmp_path) -> None:
    _tree(tmp_path, {"b.txt": b"bb", "a/z.bin": b"", "a/y/x.txt": b"x" * 10, ".hidden": b"h"})
    entries = scan_folder(tmp_path)
    assert [e.path for e in entries] == [".hidden", "a/y/x.txt", "a/z.bin", "b.txt"]
    assert entries[1] == FileEntry("a/y/x.txt", 10, hashlib.sha256(b"x" * 10).hexdigest())
    assert entries[2].size == 0 and entries[2].sha256 == hashlib.sha256(b"").hexdigest()


def test_tree_hash_ignores_mtime_but_not_names_or_bytes(tmp_path) -> None:
    _tree(tmp_path, {"a.txt": b"one", "d/b.txt": b"two"})
    before = tree_hash(scan_folder(tmp_path))
    os.utime(tmp_path / "a.txt", (1, 1))
    os.utime(tmp_path / "d" / "b.txt", (2_000_000_000, 2_000_000_000))
    assert tree_hash(scan_folder(tmp_path)) == before
    (tmp_path / "a.txt").rename(tmp_path / "c.txt")
    renamed = tree_hash(scan_folder(tmp_path))
    assert renamed != before
    (tmp_path / "c.txt").write_bytes(b"ONE")
    assert tree_hash(scan_folder(tmp_path)) not in (before, renamed)


def test_tree_hash_is_order_independent() -> None:
    a, b = FileEntry("a", 1, "0" * 64), FileEntry("b", 2, "1" * 64)
    assert tree_hash([a, b]) == tree_hash([b, a])
    expected = hashlib.sha256(f"a\x001\x00{'0' * 64}\nb\x002\x00{'1' * 64}\n".encode()).hexdigest()
    assert tree_hash([b, a]) == expected


def test_file_sha256_and_scan_file(tmp_path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # spans several 1 MiB chunks
    (tmp_path / "big.bin").write_bytes(data)
    assert file_sha256(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()
    assert scan_file(tmp_path / "big.bin") == FileEntry("big.bin", len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(NotFoundError):
        scan_file(tmp_path / "missing")
    with pytest.raises(NotFoundError):
        file_sha256(tmp_path / "missing")
    with pytest.raises(UserError, match="not a regular file"):
        scan_file(tmp_path)


def test_scan_folder_rejects_links_outside(tmp_path) -> None:
    root = tmp_path / "root"
    _tree(root, {"a.txt": b"a"})
    (tmp_path / "secret").write_bytes(b"canary")
    os.symlink(tmp_path / "secret", root / "leak")
    with pytest.raises(UserError, match="outside"):
        scan_folder(root)


def test_scan_folder_follows_links_inside_and_rejects_loops(tmp_path) -> None:
    _tree(tmp_path, {"d/a.txt": b"a"})
    os.symlink(tmp_path / "d" / "a.txt", tmp_path / "alias.txt")
    assert [e.path for e in scan_folder(tmp_path)] == ["alias.txt", "d/a.txt"]
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    with pytest.raises(UserError, match="loop"):
        scan_folder(tmp_path)


def test_scan_folder_rejects_broken_links_and_fifos(tmp_path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    with pytest.raises(UserError, match="broken"):
        scan_folder(tmp_path)
    os.unlink(tmp_path / "broken")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UserError, match="FIFO"):
        scan_folder(tmp_path)


def test_scan_folder_names_unuploadable_files(tmp_path) -> None:
    _tree(tmp_path, {"notes#1.txt": b"x"})
    with pytest.raises(UserError, match="notes#1.txt"):
        scan_folder(tmp_path)


def test_scan_folder_ignore(tmp_path) -> None:
    _tree(tmp_path, {"keep.py": b"k", "x.pyc": b"c", "__pycache__/m.pyc": b"c", "data/big.csv": b"d"})
    assert [e.path for e in scan_folder(tmp_path, ignore=["*.pyc", "__pycache__"])] == [
        "data/big.csv",
        "keep.py",
    ]
    assert [e.path for e in scan_folder(tmp_path, ignore=lambda rel: rel.startswith("data"))] == [
        "__pycache__/m.pyc",
        "keep.py",
        "x.pyc",
    ]


def test_scan_folder_missing_or_not_a_folder(tmp_path) -> None:
    with pytest.raises(NotFoundError):
        scan_folder(tmp_path / "nope")
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UserError, match="not a folder"):
        scan_folder(tmp_path / "f")
