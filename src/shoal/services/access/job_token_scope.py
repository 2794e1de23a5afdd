"""What a job token may write: its own job's run, the runs under it, and new things.

A job token (``jobtokens.py``; ``read`` and ``track``) reads the whole workspace but writes only:

- its job's run, and every run below it: runs whose parent (``parent_job_name``, MLflow's
  ``mlflow.parentRunId`` at creation) is the job or such a run, recursively, and runs the job
  created (they carry the tag ``shoal.createdByJob`` = the job, which the server sets);
- new runs (a nested run's parent must be one of the above) and new experiments;
- logged models of those runs, or ones the job created without a run (same tag);
- the artifacts of those runs and models, its own outputs' datastore paths;
- new registered models, and model versions whose source is one of its runs or models;
- tags of its own run's experiment.

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
from shoal.services.registry import model_sources
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import jobs as job_rows
from shoal.store import runs as run_store
from shoal.store import tracking as tracking_rows

CREATOR_TAG = "shoal.createdByJob"
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
        models = [
            str(m.get("model_id")) for m in data.get("metrics") or [] if isinstance(m, dict) and m.get("model_id")
        ]
        if data.get("model_id"):
            models.append(str(data["model_id"]))
        if endpoint == "runs/outputs":
            models += [str(m.get("model_id")) for m in data.get("models") or [] if isinstance(m, dict)]
        require_runs(ctx, workspace, job, [_run_id(data)] if _run_id(data) else [], models)
    elif endpoint == "runs/create":
        parent = next(
            (
                t.get("value")
                for t in data.get("tags") or []
                if isinstance(t, dict) and t.get("key") == "mlflow.parentRunId"
            ),
            None,
        )
        if parent:
            require_runs(ctx, workspace, job, [str(parent)])
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
    elif endpoint == "model-versions/create":
        found = model_sources.lineage(ctx, workspace, data)
        try:
            runs = [found.run_id] if found.run_id else []
            require_runs(ctx, workspace, job, runs, [found.model_id] if found.model_id else [])
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(
                f"a job token may register only the models of its own runs; source '{found.source[:200]}' "
                f"({exc.message.rsplit('; ', 1)[-1]})",
                details={"job": job, "source": found.source[:200]},
            ) from exc


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


def check_datastore_write(ctx: ServiceContext, workspace: str, job: str, datastore: str, rel: str) -> None:
    """A file written by a runner (``PUT …/datastores/<ds>/content``): one of the job's outputs,
    or the artifacts of a run it may write."""
    parts = rel.split("/")
    is_run_folder = len(parts) >= 2 and parts[0] == "ExperimentRun" and parts[1].startswith("dcid.")
    if datastore == job_state.ARTIFACTS_DATASTORE and is_run_folder:
        require_runs(ctx, workspace, job, [parts[1][len("dcid.") :]])
        return
    with ctx.db.read() as session:
        row = job_rows.find(session, workspace_id(session, workspace), job)
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
        if ref.scheme == "datastore" and ref.datastore == datastore and (rel == root or rel.startswith(root + "/")):
            return
    raise PermissionDeniedError(
        f"a job token may write only its job's outputs and its runs' artifacts; '{datastore}/{rel[:200]}' is neither",
        details={"job": job, "datastore": datastore, "path": rel[:200]},
    )
