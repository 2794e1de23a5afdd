"""The MLflow artifact proxy (``mlflow-artifacts:``) on a workspace's ``workspaceartifactstore``.

A run's ``artifact_uri`` is ``mlflow-artifacts:/ExperimentRun/dcid.<run id>``, so every path the
client sends starts with that prefix. A path is accepted only when it is canonical (checked by
``safe_relpath``, then joined with ``join_inside`` by the store) and lies under the root of a run
or an experiment of this workspace; anything else is refused before the store is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

from shoal.errors import NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.storage import files
from shoal.services.workspaces import workspace_id
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.paths import safe_relpath
from shoal.store import runs as run_store
from shoal.store import tracking as rows

RUN_ROOT = "ExperimentRun"
RUN_PREFIX = "dcid."
EXPERIMENT_ROOT = "experiments"
# "file:", "s3:", "c:" ...: a source URI where a relative path belongs.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_ID = re.compile(r"^[A-Za-z0-9_\-.]+$")


def _reject(raw: str, reason: str) -> UserError:
    return UserError(f"invalid artifact path {raw[:200]!r}: {reason}", details={"path": raw[:200]})


def check_id(value: str, what: str) -> str:
    """A run or experiment id as it may appear in a path: no separators, no dots-only names."""
    if not value or not _ID.match(value) or value.strip(".") == "":
        raise UserError(f"invalid {what} id {value[:200]!r}", details={what: value[:200]})
    return value


def resolve(ctx: ServiceContext, workspace: str, raw: str | None, *, allow_root: bool = False) -> str:
    """The canonical store path of a client's artifact path, proven to lie under a run or an
    experiment of this workspace (its root itself only with ``allow_root``)."""
    raw = raw or ""
    if _SCHEME.match(raw):
        raise _reject(raw, "a URI scheme is not allowed; artifact paths are relative")
    rel = safe_relpath(raw, allow_empty=True)
    segments = rel.split("/") if rel else []
    if len(segments) >= 2 and segments[0] == RUN_ROOT and segments[1].startswith(RUN_PREFIX):
        run_id = check_id(segments[1][len(RUN_PREFIX) :], "run")
        with ctx.db.read() as session:
            ws_id = workspace_id(session, workspace)
            found = run_store.job_id(session, ws_id, run_id)
        if found is None:
            raise NotFoundError(f"Run with id={run_id} not found")
    elif len(segments) >= 2 and segments[0] == EXPERIMENT_ROOT:
        exp_id = check_id(segments[1], "experiment")
        with ctx.db.read() as session:
            exp = rows.find_experiment(session, workspace_id(session, workspace), exp_id)
        if exp is None:
            raise NotFoundError(f"No Experiment with id={exp_id} exists")
    else:
        raise _reject(raw, f"artifacts live under '{RUN_ROOT}/{RUN_PREFIX}<run id>/' or '{EXPERIMENT_ROOT}/<id>/'")
    if len(segments) == 2 and not allow_root:
        raise _reject(raw, "names a run or experiment root, not a file")
    return rel


def store(ctx: ServiceContext, workspace: str) -> ArtifactStore:
    return files.store_for(ctx, workspace, job_state.ARTIFACTS_DATASTORE)


def upload(ctx: ServiceContext, workspace: str, raw: str, chunks: Iterable[bytes]) -> dict[str, Any]:
    rel = resolve(ctx, workspace, raw)
    # MLflow's answer carries no hash: none is computed (a 100 MB file saves a core's 70 ms).
    store(ctx, workspace).write_stream(rel, chunks, digest=False)
    return {}


def locate(ctx: ServiceContext, workspace: str, raw: str) -> tuple[ArtifactStore, str]:
    """The store and canonical path of an existing artifact file."""
    rel = resolve(ctx, workspace, raw)
    st = store(ctx, workspace)
    if not st.isfile(rel):
        raise NotFoundError(f"Artifact '{rel}' not found")
    return st, rel


def list_dir(ctx: ServiceContext, workspace: str, raw: str | None) -> dict[str, Any]:
    """MLflow's listing: the immediate children of a folder, by base name; a file or a missing
    folder lists nothing."""
    rel = resolve(ctx, workspace, raw, allow_root=True)
    st = store(ctx, workspace)
    if not st.isdir(rel):
        return {}
    out = []
    for name in st.list_dir(rel):
        child = f"{rel}/{name}"
        if st.isdir(child):
            out.append({"path": name, "is_dir": True})
        elif st.isfile(child):
            size = st.list_files(child)[0].size
            out.append({"path": name, "is_dir": False, "file_size": size})
    return {"files": out} if out else {}


def delete(ctx: ServiceContext, workspace: str, raw: str) -> dict[str, Any]:
    rel = resolve(ctx, workspace, raw, allow_root=True)
    st = store(ctx, workspace)
    if st.exists(rel):
        st.remove(rel)
    return {}


def read_chunks(fh: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    try:
        while block := fh.read(size):
            yield block
    finally:
        fh.close()
