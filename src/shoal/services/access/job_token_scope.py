"""What a job token may write: its own job's run, the runs under it, and new things.

A job token (``jobtokens.py``; ``read`` and ``track``) reads the whole workspace but writes only:

- its job's run, and every run below it: runs whose parent (``parent_job_name``, MLflow's
  ``mlflow.parentRunId`` at creation) is the job or such a run, recursively, and runs the job
  created (they carry the tag ``shoal.createdByJob`` = the job, which the server sets);
- new runs (a nested run's parent must be one of the above) and new experiments;
- logged models of those runs, or ones the job created without a run (same tag);
- the artifacts of those runs and models, its own outputs' datastore paths;
- new registered models, and versions of the models its job created (the name was created by
  the job, or its first version was) whose files are its runs' artifacts, its logged models or
  its outputs (never another job's folder or an outside URL);
- tags of its own run's experiment.

``mlflow.parentRunId`` (at creation, by set-tag or in a batch) may name only a run it may write.

Anything else is refused with ``PERMISSION_DENIED`` naming what was refused. Tokens that are not
job tokens (the admin token) are not limited here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shoal.entities.refs import parse_path
from shoal.errors import PermissionDeniedError, SpecError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.references.resolution import resolve_path_reference
from shoal.services.registry import model_sources
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import assets as asset_rows
from shoal.store import jobs as job_rows
from shoal.store import runs as run_store
from shoal.store import tracking as tracking_rows

CREATOR_TAG = "shoal.createdByJob"
PARENT_TAG = "mlflow.parentRunId"
MODEL_KIND = "model"
MAX_DEPTH = 100  # parent chains are short; this only stops a cycle
RUN_WRITES = frozenset(
    {
        "runs/update",
        "runs/delete",
        "runs/restore",
        "runs/log-metric",
        "runs/log-batch",
        "runs/log-parameter",
        "runs/set-tag",
        "runs/delete-tag",
        "runs/log-inputs",
        "runs/outputs",
        "runs/log-model",
    }
)
EXPERIMENT_CHANGES = frozenset({"experiments/update", "experiments/delete", "experiments/restore"})


def _denied(job: str, what: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"a job token may write only to its own run '{job}', the runs under it and the runs it created; "
        f"{what} is not one of them",
        details={"job": job},
    )


def run_in_scope(session: Session, ws_id: int, job: str, run: str) -> bool:
    """Whether ``run`` is the job's run, below it, or created by it (or below one it created)."""
    current: str | None = run
    for _ in range(MAX_DEPTH):
        if current is None:
            return False
        if current == job:
            return True
        found = run_store.parent_and_tag(session, ws_id, current, CREATOR_TAG)
        if found is None:
            return False
        parent, creator = found
        if creator == job:
            return True
        current = parent
    return False


def _model_in_scope(session: Session, ws_id: int, job: str, model_id: str) -> bool:
    row = tracking_rows.find_logged_model(session, ws_id, model_id)
    if row is None:
        return True  # nothing to protect: the service answers "does not exist"
    if (row.tags or {}).get(CREATOR_TAG) == job:
        return True
    if row.job_id is None:
        return False
    run = run_store.name_of(session, row.job_id)
    return run is not None and run_in_scope(session, ws_id, job, run)


def require_runs(
    ctx: ServiceContext, workspace: str, job: str, runs: list[str], models: list[str] | None = None
) -> None:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        for run in dict.fromkeys(runs):
            # A run that does not exist is left to the service, which says so.
            if not run_in_scope(session, ws_id, job, run) and job_rows.exists(session, ws_id, run):
                raise _denied(job, f"run '{run}'")
        for model in dict.fromkeys(models or []):
            if not _model_in_scope(session, ws_id, job, model):
                raise _denied(job, f"logged model '{model}'")


def _with_creator(items: Any, job: str) -> list[Any]:
    kept = [t for t in items or [] if not (isinstance(t, dict) and t.get("key") == CREATOR_TAG)]
    return [*kept, {"key": CREATOR_TAG, "value": job}]


def _run_id(data: dict[str, Any]) -> str:
    return str(data.get("run_id") or data.get("run_uuid") or "")


def check_mlflow(ctx: ServiceContext, workspace: str, job: str, endpoint: str, data: dict[str, Any]) -> None:
    """Refuse an MLflow write (``endpoint`` as in ``routes/mlflow.ENDPOINTS``) a job token may not
    make; tag what it creates with the job. ``data`` is the request, changed in place."""
    if endpoint in RUN_WRITES:
        _require_own_parents(ctx, workspace, job, data)
        models = [
            str(m.get("model_id")) for m in data.get("metrics") or [] if isinstance(m, dict) and m.get("model_id")
        ]
        if data.get("model_id"):
            models.append(str(data["model_id"]))
        if endpoint == "runs/outputs":
            models += [str(m.get("model_id")) for m in data.get("models") or [] if isinstance(m, dict)]
        require_runs(ctx, workspace, job, [_run_id(data)] if _run_id(data) else [], models)
    elif endpoint == "runs/create":
        _require_own_parents(ctx, workspace, job, data)
        data["tags"] = _with_creator(data.get("tags"), job)
    elif endpoint == "logged-models":
        if data.get("source_run_id"):
            require_runs(ctx, workspace, job, [str(data["source_run_id"])])
        data["tags"] = _with_creator(data.get("tags"), job)
    elif endpoint.startswith("logged-models/{model_id}"):
        require_runs(ctx, workspace, job, [], [str(data.get("model_id") or "")])
    elif endpoint in EXPERIMENT_CHANGES:
        raise PermissionDeniedError(
            "a job token cannot rename, delete or restore experiments: they hold other jobs' runs",
            details={"job": job, "experiment_id": str(data.get("experiment_id") or "")},
        )
    elif endpoint == "experiments/set-experiment-tag":
        _require_own_experiment(ctx, workspace, job, str(data.get("experiment_id") or ""))
    elif endpoint == "registered-models/create":
        data["tags"] = _with_creator(data.get("tags"), job)
    elif endpoint == "model-versions/create":
        found = model_sources.lineage(ctx, workspace, data)
        check_model_register(ctx, workspace, job, str(data.get("name") or ""), found.path, found.source)
        data["tags"] = _with_creator(data.get("tags"), job)


def _require_own_parents(ctx: ServiceContext, workspace: str, job: str, data: dict[str, Any]) -> None:
    """``mlflow.parentRunId`` nests a run under another in every MLflow UI: only under a run the
    job may write (a ``runs/create`` or ``log-batch`` tag, or ``set-tag``)."""
    tags = [t for t in data.get("tags") or [] if isinstance(t, dict)]
    if data.get("key") is not None:
        tags.append(data)
    parents = [str(t.get("value") or "") for t in tags if t.get("key") == PARENT_TAG]
    for parent in parents:
        try:
            require_runs(ctx, workspace, job, [parent])
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(
                f"a job token may set {PARENT_TAG} only to a run it may write; {exc.message.rsplit('; ', 1)[-1]}",
                details={"job": job, "parent": parent[:200]},
            ) from exc
        with ctx.db.read() as session:
            if parent and not job_rows.exists(session, workspace_id(session, workspace), parent):
                raise PermissionDeniedError(
                    f"a job token may set {PARENT_TAG} only to a run it may write; run '{parent[:200]}' does not exist",
                    details={"job": job, "parent": parent[:200]},
                )


# -- model registration -----------------------------------------------------------------------


def check_model_register(ctx: ServiceContext, workspace: str, job: str, name: str, path: str, source: str) -> None:
    """A job token registers a version of ``name`` whose files are at ``path`` (a datastore URI,
    after resolution) only when the job created the name and the files are its own."""
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        container = asset_rows.find_container(session, ws_id, MODEL_KIND, name) if name else None
        if container is not None and (container.tags or {}).get(CREATOR_TAG) != job:
            first = asset_rows.first_version(session, container.id)
            if first is None or ((first.spec or {}).get("tags") or {}).get(CREATOR_TAG) != job:
                raise PermissionDeniedError(
                    f"a job token may add versions only to models its job created; model '{name}' was not "
                    f"created by job '{job}'",
                    details={"job": job, "name": name},
                )
    try:
        ref = parse_path(path)
    except SpecError:
        ref = None
    if ref is None or ref.scheme != "datastore" or not _own_files(ctx, workspace, job, ref.datastore, ref.path):
        raise PermissionDeniedError(
            f"a job token may register only its own runs' artifacts, logged models or outputs; source "
            f"'{source[:200]}' is none of them",
            details={"job": job, "source": source[:200]},
        )


def _require_own_experiment(ctx: ServiceContext, workspace: str, job: str, experiment_id: str) -> None:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        own = run_store.experiment_of(session, ws_id, job)
        exp = tracking_rows.find_experiment(session, ws_id, experiment_id) if experiment_id else None
    if exp is not None and exp.id != own:
        raise PermissionDeniedError(
            f"a job token may tag only its own run's experiment; experiment '{experiment_id}' is another",
            details={"job": job, "experiment_id": experiment_id},
        )


# -- files ----------------------------------------------------------------------------------


def check_artifact_write(ctx: ServiceContext, workspace: str, job: str, raw: str) -> None:
    """An upload or delete through the MLflow artifact proxy: under a run or logged model the
    token may write. (The proxy itself checks the path's form and that it exists.)"""
    try:
        rel = safe_relpath(raw or "", allow_empty=True)
    except SpecError:
        return  # malformed: the proxy refuses it with its own message
    parts = rel.split("/") if rel else []
    if len(parts) >= 2 and parts[0] == "ExperimentRun" and parts[1].startswith("dcid."):
        require_runs(ctx, workspace, job, [parts[1][len("dcid.") :]])
        return
    if len(parts) >= 4 and parts[0] == "experiments" and parts[2] == "models":
        require_runs(ctx, workspace, job, [], [parts[3]])
        return
    raise _denied(job, f"artifact path '{rel[:200]}'")


def _own_files(ctx: ServiceContext, workspace: str, job: str, datastore: str, raw: str) -> bool:
    """Whether ``datastore/raw`` lies in one of the job's outputs, or in the artifacts of a run or
    logged model it may write."""
    try:
        rel = safe_relpath(raw.strip("/"))
    except SpecError:
        return False
    parts = rel.split("/")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if datastore == job_state.ARTIFACTS_DATASTORE:
            if len(parts) >= 2 and parts[0] == "ExperimentRun" and parts[1].startswith("dcid."):
                return run_in_scope(session, ws_id, job, parts[1][len("dcid.") :])
            if len(parts) >= 4 and parts[0] == "experiments" and parts[2] == "models":
                found = tracking_rows.find_logged_model(session, ws_id, parts[3]) is not None
                return found and _model_in_scope(session, ws_id, job, parts[3])
        row = job_rows.find(session, ws_id, job)
        outputs = list(((row.resolved or {}).get("outputs") or {}).values()) if row is not None else []
    for out in outputs:
        path = out.get("path") if isinstance(out, dict) else None
        if not path:
            continue
        try:
            ref = parse_path(str(path))
        except SpecError:
            continue
        root = ref.path.strip("/")
        inside = rel == root or rel.startswith(root + "/")
        if ref.scheme == "datastore" and ref.datastore == datastore and root and inside:
            return True
    return False


def _root_outputs(ctx: ServiceContext, workspace: str, job: str, datastore: str) -> list[str]:
    """The job's outputs whose path is the datastore's root (never writable: see below)."""
    with ctx.db.read() as session:
        row = job_rows.find(session, workspace_id(session, workspace), job)
        outputs = ((row.resolved or {}).get("outputs") or {}) if row is not None else {}
    found = []
    for name, out in outputs.items():
        try:
            ref = parse_path(str((out or {}).get("path") or ""))
        except SpecError:
            continue
        if ref.scheme == "datastore" and ref.datastore == datastore and not (ref.path or "").strip("/"):
            found.append(name)
    return found


def check_datastore_write(ctx: ServiceContext, workspace: str, job: str, datastore: str, rel: str) -> None:
    """A file written by a runner (``PUT …/datastores/<ds>/content``): one of the job's outputs,
    or the artifacts of a run it may write."""
    parts = rel.split("/")
    is_run_folder = len(parts) >= 2 and parts[0] == "ExperimentRun" and parts[1].startswith("dcid.")
    if datastore == job_state.ARTIFACTS_DATASTORE and is_run_folder:
        require_runs(ctx, workspace, job, [parts[1][len("dcid.") :]])
        return
    if _own_files(ctx, workspace, job, datastore, rel) and not (
        datastore == job_state.ARTIFACTS_DATASTORE and parts[0] == "experiments"
    ):
        return
    at_root = _root_outputs(ctx, workspace, job, datastore)
    # A whole datastore is not a job's to write: other jobs' uploads and outputs live there.
    why = (
        f" (output '{at_root[0]}' is the datastore's root, which no job may write: use a folder in it)"
        if at_root
        else ""
    )
    raise PermissionDeniedError(
        f"a job token may write only its job's outputs and its runs' artifacts; '{datastore}/{rel[:200]}' is "
        f"neither{why}",
        details={"job": job, "datastore": datastore, "path": rel[:200]},
    )


def _inside(rel: str, root: str) -> bool:
    return not root or rel == root or rel.startswith(root + "/")


def check_datastore_direct_read(ctx: ServiceContext, workspace: str, job: str, datastore: str, rels: list[str]) -> None:
    """Files a runner reads from the store itself with URLs the server signs
    (``…/datastores/<ds>/direct-reads``): only inside the job's own inputs and outputs. A job
    token reads the whole workspace through the server; a signed URL, a credential of its own
    once handed out, is given only for what the job needs."""
    with ctx.db.read() as session:
        row = job_rows.find(session, workspace_id(session, workspace), job)
        resolved = (row.resolved or {}) if row is not None else {}
    roots = []
    for entry in [*(resolved.get("inputs") or {}).values(), *(resolved.get("outputs") or {}).values()]:
        uri = (entry.get("uri") or entry.get("path")) if isinstance(entry, dict) else None
        try:
            ref = parse_path(str(uri)) if uri else None
        except SpecError:
            continue
        if ref is not None and ref.scheme == "datastore" and ref.datastore == datastore:
            roots.append((ref.path or "").strip("/"))
    for rel in rels:
        if not any(_inside(rel, root) for root in roots):
            raise PermissionDeniedError(
                f"a job token gets signed URLs only for its job's inputs and outputs; '{datastore}/{rel[:200]}' is "
                "neither (read it through the server)",
                details={"job": job, "datastore": datastore, "path": rel[:200]},
            )


def check_model_spec(ctx: ServiceContext, workspace: str, job: str, name: str, spec: dict[str, Any]) -> None:
    """A model version sent to the Azure routes (``PUT …/models/<name>/versions/<v>``) by a job
    token: the same rule as ``model-versions/create``; the version is marked as the job's."""
    path = str(spec.get("path") or "")
    resolved = path
    try:
        ref = parse_path(path)
        if ref.scheme in ("job_output", "runs", "asset") or (path.startswith("azureml:") and "://" not in path):
            resolved, _ = resolve_path_reference(ctx, workspace, MODEL_KIND, path, f"model '{name}'")
    except SpecError:
        resolved = ""
    check_model_register(ctx, workspace, job, name, resolved, path)
    spec["tags"] = {**(spec.get("tags") or {}), CREATOR_TAG: job}
