"""Small inputs and code snapshots sent inside the run spec (see ``shoal.storage.small_trees``).

What a runner would have fetched with a listing and a download comes with its run spec instead,
base64-encoded: at most ``INLINE_FILES`` files and ``INLINE_BYTES`` bytes for the whole job. The
runner places them where its downloads would have put them; anything bigger it fetches itself.
"""

from __future__ import annotations

import base64
from typing import Any

from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import parse_path
from shoal.services.context import ServiceContext
from shoal.services.storage import files
from shoal.storage.small_trees import read_small

INLINE_FILES = 16
INLINE_BYTES = 64 * 1024


def inline_files(
    ctx: ServiceContext, workspace: str, inputs: dict[str, Any], code: dict[str, Any] | None
) -> dict[str, Any]:
    """``{"inputs": {name: tree}, "code": tree}`` for the job's small datastore inputs (not
    ``direct``: the job reads those itself) and its code snapshot, where they are on a local
    store; a tree is ``{"is_dir": bool, "files": [[path, base64], ...]}``."""
    budget = [INLINE_FILES, INLINE_BYTES]
    out: dict[str, Any] = {"inputs": {}}
    for name, entry in inputs.items():
        if not isinstance(entry, dict) or entry.get("type") in PRIMITIVE_TYPES or entry.get("mode") == "direct":
            continue
        tree = _tree(ctx, workspace, str(entry.get("uri") or ""), budget)
        if tree is not None:
            out["inputs"][name] = tree
    if code and code.get("uri"):
        tree = _tree(ctx, workspace, str(code["uri"]), budget)
        if tree is not None:
            out["code"] = tree
    return out


def _tree(ctx: ServiceContext, workspace: str, uri: str, budget: list[int]) -> dict[str, Any] | None:
    try:
        ref = parse_path(uri)
    except Exception:  # noqa: BLE001 - not a path Shoal reads (a web URL): the runner fetches it
        return None
    if ref.scheme != "datastore" or not ref.datastore or budget[0] <= 0:
        return None
    try:
        store = files.store_for(ctx, workspace, ref.datastore)
    except Exception:  # noqa: BLE001 - gone or unreadable: the runner's own fetch says why
        return None
    if not store.is_local:
        return None
    found = read_small(store, (ref.path or "").strip("/"), max_files=budget[0], max_bytes=budget[1])
    if found is None:
        return None
    is_dir, items = found
    budget[0] -= len(items)
    budget[1] -= sum(len(content) for _, content in items)
    return {"is_dir": is_dir, "files": [[p, base64.b64encode(c).decode("ascii")] for p, c in items]}
