"""Artifact storage: safe paths, content hashes, atomic fsspec writes, uploads, secrets.

Submodules are imported lazily so that ``shoal.storage.hashing`` (used by the client) does not
pull in fsspec or cryptography.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "safe_relpath": "paths",
    "join_inside": "paths",
    "decode_once": "paths",
    "FileEntry": "hashing",
    "scan_folder": "hashing",
    "scan_file": "hashing",
    "tree_hash": "hashing",
    "file_sha256": "hashing",
    "ArtifactStore": "filesystem",
    "StoredFile": "filesystem",
    "UploadManager": "uploads",
    "Manifest": "uploads",
    "parse_manifest": "uploads",
    "SecretBox": "secrets",
    "DatastoreFiles": "datastores",
    "resolve_datastore_fs": "datastores",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal.storage' has no attribute {name!r}")
    return getattr(importlib.import_module(f"shoal.storage.{module}"), name)
