"""Small files that travel inside the runner's own calls instead of transfers of their own.

In: small inputs and code snapshots come inside the run spec (see ``shoal.storage.small_trees``).
What a runner would have fetched with a listing and a download comes base64-encoded: at most
``INLINE_FILES`` files and ``INLINE_BYTES`` bytes for the whole job. The runner places them where
its downloads would have put them; anything bigger it fetches itself.

Out: a job whose outputs and artifacts are as small, all bound for local stores (the run spec's
``inline.writes``), sends them with its ``Completed`` report (``files``), which the server
writes before it records the outcome: a pipeline step ends with one request, not two.
"""

from __future__ import annotations

import base64
from typing import Any

from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import datastore_path
from shoal.errors import PayloadTooLargeError, UserError
from shoal.services.context import ServiceContext
from shoal.services.storage import files
from shoal.storage.paths import safe_relpath
from shoal.storage.small_trees import read_small

INLINE_FILES = 16
INLINE_BYTES = 64 * 1024


class Stores:
    """The job's datastores as the run spec reads them, each opened once (``None``: gone or
    unreadable, the runner's own transfer then says why)."""

    def __init__(self, ctx: ServiceContext, workspace: str) -> None:
        self.ctx, self.workspace = ctx, workspace
        self._open: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._open:
            try:
                self._open[name] = files.store_for(self.ctx, self.workspace, name)
            except Exception:  # noqa: BLE001 - see the class
                self._open[name] = None
        return self._open[name]


def inline_files(
    stores: Stores, inputs: dict[str, Any], code: dict[str, Any] | None, written: list[str]
) -> dict[str, Any]:
    """``{"inputs": {name: tree}, "code": tree, "writes": offer}`` for the job's small datastore
    inputs (not ``direct``: the job reads those itself) and its code snapshot, where they are on
    a local store; a tree is ``{"is_dir": bool, "files": [[path, base64], ...]}``. ``written``:
    the datastores the job's outputs and artifacts go to; those on a local store are offered for
    the ``Completed`` report's ``files`` (``{"datastores": [...], "files": n, "bytes": n}``)."""
    budget = [INLINE_FILES, INLINE_BYTES]
    out: dict[str, Any] = {"inputs": {}}
    for name, entry in inputs.items():
        if not isinstance(entry, dict) or entry.get("type") in PRIMITIVE_TYPES or entry.get("mode") == "direct":
            continue
        tree = _tree(stores, str(entry.get("uri") or ""), budget)
        if tree is not None:
            out["inputs"][name] = tree
    if code and code.get("uri"):
        tree = _tree(stores, str(code["uri"]), budget)
        if tree is not None:
            out["code"] = tree
    local = sorted({name for name in written if getattr(stores.get(name), "is_local", False)})
    out["writes"] = {"datastores": local, "files": INLINE_FILES, "bytes": INLINE_BYTES}
    return out


def parse_writes(given: Any) -> list[tuple[str, str, list[tuple[str, bytes]]]]:
    """A ``Completed`` report's ``files``, checked and bounded: ``(datastore, prefix, [(path
    under prefix, bytes)])`` per group. A group with an empty prefix names each file's whole
    path (a ``uri_file`` output)."""
    if given is None:
        return []
    if not isinstance(given, list) or len(given) > INLINE_FILES:
        raise UserError(f"files must be a list of at most {INLINE_FILES} groups")
    out: list[tuple[str, str, list[tuple[str, bytes]]]] = []
    count = total = 0
    for group in given:
        if not isinstance(group, dict) or not isinstance(group.get("datastore"), str):
            raise UserError("each group of files needs a 'datastore' name, a 'prefix' and 'files'")
        prefix = safe_relpath(str(group.get("prefix") or ""), allow_empty=True)
        items = group.get("files")
        if not isinstance(items, list):
            raise UserError(f"files for datastore '{group['datastore']}' must be a list of [path, base64]")
        decoded = []
        for item in items:
            count += 1
            if count > INLINE_FILES:
                raise PayloadTooLargeError(f"a report carries at most {INLINE_FILES} files")
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise UserError("each file must be [path, base64 content]")
            if len(item[1]) > (INLINE_BYTES * 4) // 3 + 4:
                raise PayloadTooLargeError(f"a report carries at most {INLINE_BYTES} bytes of files")
            try:
                data = base64.b64decode(item[1], validate=True)
            except ValueError as exc:
                raise UserError(f"file {item[0][:200]!r}: its content is not base64") from exc
            total += len(data)
            if total > INLINE_BYTES:
                raise PayloadTooLargeError(f"a report carries at most {INLINE_BYTES} bytes of files")
            decoded.append((safe_relpath(item[0]), data))
        out.append((group["datastore"], prefix, decoded))
    return out


def write(ctx: ServiceContext, workspace: str, writes: list[tuple[str, str, list[tuple[str, bytes]]]]) -> None:
    """Store a report's files, each whole or not at all (as ``PUT …/contents`` does)."""
    for datastore, prefix, items in writes:
        if items:
            store = files.store_for(ctx, workspace, datastore)
            store.write_many([(f"{prefix}/{rel}" if prefix else rel, data) for rel, data in items])


def _tree(stores: Stores, uri: str, budget: list[int]) -> dict[str, Any] | None:
    ref = datastore_path(uri)  # None for a web URL: the runner fetches it
    if ref is None or budget[0] <= 0:
        return None
    store = stores.get(ref.datastore)
    if store is None or not store.is_local:
        return None
    found = read_small(store, (ref.path or "").strip("/"), max_files=budget[0], max_bytes=budget[1])
    if found is None:
        return None
    is_dir, items = found
    budget[0] -= len(items)
    budget[1] -= sum(len(content) for _, content in items)
    return {"is_dir": is_dir, "files": [[p, base64.b64encode(c).decode("ascii")] for p, c in items]}
