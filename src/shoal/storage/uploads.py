"""Content-addressed uploads of local folders and files: the server half of the protocol.

1. the client scans its folder and sends ``{"name", "files": [{"path","size","sha256"}], "hash"}``;
2. ``begin`` validates it; when ``LocalUpload/<hash>/<name>`` already exists nothing is uploaded;
3. ``put_file`` stores each listed file in a private staging folder, verified on arrival;
4. ``commit`` checks that all files arrived, then publishes the staging folder in one rename.

Staging layout: ``<staging_prefix>/<upload_id>/manifest.json`` and ``.../files/<path>``. A
manifest with a single entry whose path equals ``name`` is a file upload (``"kind"`` may say so
explicitly); its final path is the file itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shoal.errors import (
    ConflictError,
    InfraError,
    NotFoundError,
    PayloadTooLargeError,
    ShoalError,
    StorageFullError,
    UserError,
)
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.hashing import FileEntry, tree_hash
from shoal.storage.paths import safe_relpath

UPLOAD_ROOT = "LocalUpload"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_LISTED_MISSING = 20


@dataclass(frozen=True)
class Manifest:
    name: str
    files: tuple[FileEntry, ...]
    hash: str
    kind: str  # "file" or "folder"

    @property
    def final_rel(self) -> str:
        return f"{UPLOAD_ROOT}/{self.hash}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "hash": self.hash,
            "files": [e.to_dict() for e in self.files],
        }


def _bad(msg: str, **details: Any) -> UserError:
    return UserError(f"invalid upload manifest: {msg}", details=details)


def _parse_entry(raw: Any, index: int) -> FileEntry:
    if not isinstance(raw, Mapping):
        raise _bad(f"files[{index}] must be an object")
    path, size, sha = raw.get("path"), raw.get("size"), raw.get("sha256")
    if not isinstance(path, str) or safe_relpath(path) != path:
        raise _bad(f"files[{index}].path {path!r} is not a canonical relative path", path=path)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _bad(f"files[{index}].size must be a non-negative integer", path=path)
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise _bad(f"files[{index}].sha256 must be 64 lowercase hex digits", path=path)
    return FileEntry(path, size, sha)


def parse_manifest(
    raw: Mapping[str, Any] | Manifest, *, max_files: int = 100_000, max_total_bytes: int | None = None
) -> Manifest:
    """Validate a client manifest; every problem is a :class:`UserError` naming the field."""
    if isinstance(raw, Manifest):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise _bad("must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or "/" in name or safe_relpath(name) != name:
        raise _bad(f"name {name!r} must be a single canonical path segment", name=name)
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise _bad("files must be a non-empty list (an empty folder has nothing to upload)")
    if len(files) > max_files:
        raise PayloadTooLargeError(f"upload lists {len(files)} files; the limit is {max_files}")
    entries = tuple(sorted((_parse_entry(f, i) for i, f in enumerate(files)), key=lambda e: e.path))
    _check_tree(entries)
    total = sum(e.size for e in entries)
    if max_total_bytes is not None and total > max_total_bytes:
        raise PayloadTooLargeError(f"upload is {total} bytes; the limit is {max_total_bytes}")
    declared = raw.get("hash")
    if not isinstance(declared, str) or not _HEX64.match(declared):
        raise _bad("hash must be 64 lowercase hex digits")
    actual = tree_hash(entries)
    if declared != actual:
        raise _bad(f"hash {declared} does not match the listed files ({actual})", expected=actual)
    single = len(entries) == 1 and entries[0].path == name
    kind = raw.get("kind") or ("file" if single else "folder")
    if kind not in ("file", "folder") or (kind == "file" and not single):
        raise _bad(f"kind {kind!r} must be 'folder', or 'file' with one entry whose path is the name")
    return Manifest(name=name, files=entries, hash=declared, kind=kind)


def _check_tree(entries: tuple[FileEntry, ...]) -> None:
    """No duplicates, and no path that is both a file and a folder (``a`` and ``a/b``)."""
    paths = {e.path for e in entries}
    if len(paths) != len(entries):
        seen: set[str] = set()
        dup = next(e.path for e in entries if e.path in seen or seen.add(e.path))
        raise _bad(f"path {dup!r} is listed twice", path=dup)
    for e in entries:
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in paths:
                raise _bad(f"{parent!r} is listed as a file and as a folder of {e.path!r}", path=parent)


class UploadManager:
    """Stages, verifies and publishes uploads into ``store``."""

    def __init__(
        self,
        store: ArtifactStore,
        staging_prefix: str = ".staging",
        *,
        max_files: int = 100_000,
        max_total_bytes: int | None = None,
        session_ttl: float | None = None,
    ) -> None:
        self.store = store
        # Seconds an unfinished upload lives; then it is refused (and swept, see gc).
        self.session_ttl = session_ttl
        self.staging_prefix = safe_relpath(staging_prefix)
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes
        # Manifests never change once written; caching them keeps put_file O(1) per file.
        self._cache: OrderedDict[str, tuple[Manifest, dict[str, FileEntry], float]] = OrderedDict()
        self._lock = threading.Lock()

    def _staging(self, upload_id: str) -> str:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise UserError(f"invalid upload id {upload_id!r}", details={"upload_id": str(upload_id)[:64]})
        return f"{self.staging_prefix}/{upload_id}"

    def begin(self, manifest: Mapping[str, Any] | Manifest) -> tuple[str | None, str]:
        """Start an upload: ``(upload_id, final_rel)``, or ``(None, final_rel)`` when stored already."""
        m = parse_manifest(manifest, max_files=self.max_files, max_total_bytes=self.max_total_bytes)
        if self._published(m):
            return None, m.final_rel
        upload_id = uuid.uuid4().hex
        record = {"created": time.time(), "manifest": m.to_dict()}
        body = json.dumps(record, separators=(",", ":")).encode()
        try:
            self.store.write_stream(f"{self._staging(upload_id)}/manifest.json", [body])
        except StorageFullError:
            self.abort(upload_id)  # not even an empty staging folder stays behind
            raise
        self._remember(upload_id, m, record["created"])
        return upload_id, m.final_rel

    def _published(self, m: Manifest) -> bool:
        if not self.store.exists(m.final_rel):
            return False
        if self.store.isdir(m.final_rel) != (m.kind == "folder"):
            # Same bytes uploaded once as the file <name> and once as a folder <name>/<name>.
            raise ConflictError(
                f"{m.final_rel!r} is already stored as a {'file' if m.kind == 'folder' else 'folder'}",
                details={"path": m.final_rel},
            )
        return True

    def _remember(self, upload_id: str, m: Manifest, created: float) -> tuple[Manifest, dict[str, FileEntry]]:
        item = (m, {e.path: e for e in m.files}, created)
        with self._lock:
            self._cache[upload_id] = item
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return item[0], item[1]

    def _fresh(self, upload_id: str, created: float) -> None:
        if self.session_ttl is not None and time.time() - created > self.session_ttl:
            self.abort(upload_id)
            raise NotFoundError(
                f"upload {upload_id} expired: unfinished uploads live {self.session_ttl:g} s; start it again",
                details={"upload_id": upload_id},
            )

    def _load(self, upload_id: str) -> tuple[Manifest, dict[str, FileEntry]]:
        staging = self._staging(upload_id)
        with self._lock:
            cached = self._cache.get(upload_id)
            if cached is not None:
                self._cache.move_to_end(upload_id)
        if cached is not None:
            self._fresh(upload_id, cached[2])
            return cached[0], cached[1]
        try:
            with self.store.open_read(f"{staging}/manifest.json") as fh:
                record = json.loads(fh.read())
        except NotFoundError:
            raise NotFoundError(f"upload {upload_id} not found (committed, aborted or expired)") from None
        except (ValueError, TypeError) as exc:
            raise InfraError(f"upload {upload_id} has a corrupt manifest: {exc}") from None
        try:
            m = parse_manifest(record["manifest"], max_files=self.max_files, max_total_bytes=None)
            created = float(record.get("created") or 0)
        except (ShoalError, KeyError, TypeError, ValueError) as exc:
            raise InfraError(f"upload {upload_id} has a corrupt manifest: {exc}") from None
        self._fresh(upload_id, created)
        return self._remember(upload_id, m, created)

    def put_file(self, upload_id: str, rel: str, chunks: Iterable[bytes]) -> FileEntry:
        """Store one listed file; its size and sha256 must match the manifest."""
        m, by_path = self._load(upload_id)
        rel = safe_relpath(rel)
        entry = by_path.get(rel)
        if entry is None:
            raise UserError(f"{rel!r} is not listed in the manifest of upload {upload_id}", details={"path": rel})
        try:
            return self.store.write_stream(
                f"{self._staging(upload_id)}/files/{rel}",
                chunks,
                expected_sha256=entry.sha256,
                expected_size=entry.size,
            )
        except StorageFullError as exc:
            # A full store: drop the whole session now, so the files already staged free their
            # space at once instead of waiting for the expiry sweep; the client starts over.
            self.abort(upload_id)
            raise StorageFullError(
                f"{exc.message}; upload {upload_id} was dropped, start it again",
                details={**exc.details, "upload_id": upload_id},
            ) from None

    def missing(self, upload_id: str) -> list[str]:
        """Manifest paths not yet stored (or stored with another size) for this upload."""
        m, _ = self._load(upload_id)
        files_rel = f"{self._staging(upload_id)}/files"
        stored = {f.path: f.size for f in self.store.list_files(files_rel)} if self.store.exists(files_rel) else {}
        return [e.path for e in m.files if stored.get(e.path) != e.size]

    def commit(self, upload_id: str) -> str:
        """Publish a complete upload and return its final path; missing files are a UserError."""
        m, _ = self._load(upload_id)
        staging = self._staging(upload_id)
        missing = self.missing(upload_id)
        if missing:
            shown = ", ".join(repr(p) for p in missing[:_MAX_LISTED_MISSING])
            more = f" and {len(missing) - _MAX_LISTED_MISSING} more" if len(missing) > _MAX_LISTED_MISSING else ""
            raise UserError(
                f"upload {upload_id} is missing {len(missing)} file(s): {shown}{more}",
                details={"missing": missing[:1000], "count": len(missing)},
            )
        source = f"{staging}/files" if m.kind == "folder" else f"{staging}/files/{m.name}"
        if not self._published(m):
            self.store.publish_dir(source, m.final_rel)
        self._published(m)  # the winner of a race may have used the other kind: conflict
        self.abort(upload_id)
        return m.final_rel

    def abort(self, upload_id: str) -> None:
        """Drop an upload's staging folder; a no-op when it is already gone."""
        staging = self._staging(upload_id)
        with self._lock:
            self._cache.pop(upload_id, None)
        try:
            self.store.remove(staging)
        except NotFoundError:
            pass

    def gc(self, older_than_seconds: float) -> int:
        """Remove staging folders older than the given age; returns how many were removed."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        if not self.store.exists(self.staging_prefix):
            return 0
        for upload_id in self.store.list_dir(self.staging_prefix):
            if not _UPLOAD_ID.match(upload_id):
                continue
            created = self._created(upload_id)
            if created is None or created < cutoff:
                self.abort(upload_id)
                removed += 1
        return removed

    def _created(self, upload_id: str) -> float | None:
        staging = self._staging(upload_id)
        try:
            with self.store.open_read(f"{staging}/manifest.json") as fh:
                return float(json.loads(fh.read())["created"])
        except (ShoalError, ValueError, KeyError, TypeError):
            pass
        # No readable manifest: a begin that crashed, or one still writing it; fall back to
        # the folder's own age when the backend knows it.
        try:
            return self.store.modified(staging)
        except ShoalError:
            return None
