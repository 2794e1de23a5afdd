"""Step reuse: the key that says whether a pipeline step would compute what an earlier job did.

The key is a sha256 over the parts that determine a step's outputs, each hashed on its own so
the step can show which part changed:

- ``component``: the command, the input and output declarations, distribution, resources,
  environment variables and ``is_deterministic`` (not the compute: where it runs is no part of
  what it computes);
- ``code``: the snapshot's content hash (uploads are content-addressed; other code locations
  are hashed file by file);
- ``environment``: the resolved environment (asset version body, curated name or inline spec);
- ``inputs``: for data, the content of the files (relative path, size, sha256), not the path;
  for parameters, the value;
- ``outputs``: their types, and their paths where the job chose them.

A step is reused when a completed job of the same workspace has the same key and its outputs
are still there; ``settings.force_rerun`` and ``is_deterministic: false`` turn reuse off.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

from shoal.entities.refs import parse_path
from shoal.services.context import ServiceContext
from shoal.services.storage import files

_DIGESTS: dict[tuple[str, int, int], str] = {}  # (local file, size, mtime_ns) -> sha256
_DIGESTS_LOCK = threading.Lock()
_DIGESTS_MAX = 100_000


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(store: Any, rel: str) -> str:
    local = store.local_path(rel)
    if local is not None:
        try:
            st = os.stat(local)
            cache_key = (str(local), st.st_size, st.st_mtime_ns)
        except OSError:
            cache_key = None
        if cache_key is not None:
            with _DIGESTS_LOCK:
                hit = _DIGESTS.get(cache_key)
            if hit is not None:
                return hit
    sha = hashlib.sha256()
    with store.open_read(rel) as fh:
        while chunk := fh.read(1024 * 1024):
            sha.update(chunk)
    out = sha.hexdigest()
    if local is not None and cache_key is not None:
        with _DIGESTS_LOCK:
            if len(_DIGESTS) >= _DIGESTS_MAX:
                _DIGESTS.clear()
            _DIGESTS[cache_key] = out
    return out


def content_digest(ctx: ServiceContext, workspace: str, uri: str) -> str:
    """The identity of the files behind a URI (a datastore path): what they contain, not where.

    URIs Shoal cannot read from here (web URLs) are identified by themselves."""
    ref = parse_path(uri)
    if ref.scheme != "datastore":
        return digest({"uri": uri})
    store = files.store_for(ctx, workspace, ref.datastore)
    rel = (ref.path or "").strip("/")
    try:
        listing = store.list_files(rel)
    except Exception:  # noqa: BLE001 - a missing input hashes as missing; the job will say why
        return digest({"missing": uri})
    single = len(listing) == 1 and store.isfile(rel) if rel else False
    lines = []
    for entry in listing:
        file_rel = rel if single else (f"{rel}/{entry.path}" if rel else entry.path)
        lines.append(f"{'' if single else entry.path}\0{entry.size}\0{_file_sha256(store, file_rel)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def static_parts(
    resolved: dict[str, Any], component: dict[str, Any], ctx: ServiceContext, workspace: str
) -> dict[str, str]:
    """The parts known at submission: component, code, environment, outputs."""
    comp = {
        k: v
        for k, v in component.items()
        if k
        not in (
            "name",
            "version",
            "display_name",
            "description",
            "tags",
            "code",
            "environment",
            "creation_context",
            "id",
            "$schema",
            "properties",
        )
    }
    code = resolved.get("code") or {}
    code_uri = str(code.get("uri") or "")
    if "/LocalUpload/" in code_uri or not code_uri:
        code_part = digest({"code": code_uri.split("/LocalUpload/", 1)[-1].split("/", 1)[0]})
    else:
        code_part = content_digest(ctx, workspace, code_uri)
    env = dict(resolved.get("environment") or {})
    spec = env.get("spec")
    if isinstance(spec, dict):
        env["spec"] = {k: v for k, v in spec.items() if k not in ("creation_context", "id", "tags", "description")}
    outputs = {
        name: {"type": out.get("type"), **({"path": out["path"]} if out.get("chosen_path") else {})}
        for name, out in (resolved.get("outputs") or {}).items()
    }
    return {
        "component": digest(comp),
        "code": code_part,
        "environment": digest(env),
        "outputs": digest(outputs),
    }


def input_parts(ctx: ServiceContext, workspace: str, inputs: dict[str, Any]) -> dict[str, str]:
    parts = {}
    for name, entry in sorted(inputs.items()):
        if entry.get("uri"):
            parts[name] = digest({"type": entry.get("type"), "content": content_digest(ctx, workspace, entry["uri"])})
        else:
            parts[name] = digest({"type": entry.get("type"), "value": entry.get("value")})
    return parts


def key_of(static: dict[str, str], inputs: dict[str, str]) -> str:
    return digest({"static": static, "inputs": inputs})
