"""Where a model version's source is (``model-versions/create``): the asset path a source URI
stands for, and the run and logged model it came from, checked as MLflow's server checks them.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shoal.entities.refs import parse_path
from shoal.errors import NotFoundError, SpecError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.references import resolution as job_references
from shoal.services.registry.common import (
    KIND,
    PROP_MODEL,
    PROP_RUN,
    canonical_stage,
    container_row,
    stage_arg,
    version_key,
    version_row,
    versions_of,
)
from shoal.services.tracking.logged_models import ARTIFACTS_PREFIX, logged_model
from shoal.services.tracking.values import no_separator, str_arg
from shoal.services.workspaces import workspace_id
from shoal.store import jobs as job_rows
from shoal.store import model_registry as model_rows
from shoal.store import runs as run_store
from shoal.store.tables import AssetContainerRow, AssetVersionRow

ARTIFACTS = "mlflow-artifacts"


PROXY_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")


@dataclass(frozen=True)
class Lineage:
    """What a model version's source stands for: the asset path, and the run and logged model
    it came from (when known)."""

    source: str
    path: str
    run_id: str | None
    model_id: str | None


def _invalid_source(source: str, why: str) -> UserError:
    return UserError(f"Invalid model version source: '{source[:500]}'. {why}", details={"source": source[:500]})


def _artifact_path(source: str) -> str | None:
    """The artifact-store path of an ``mlflow-artifacts:`` URI (or of an http(s) URL of an
    artifact proxy), else None."""
    parsed = urllib.parse.urlsplit(source)
    parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
    if parsed.scheme.lower() == ARTIFACTS:
        return "/".join(parts)
    if parsed.scheme.lower() in ("http", "https"):
        for i in range(len(parts) - len(PROXY_ROUTE) + 1):
            if tuple(parts[i : i + len(PROXY_ROUTE)]) == PROXY_ROUTE:
                return "/".join(parts[i + len(PROXY_ROUTE) :])
    return None


def _store_uri(path: str) -> str:
    return f"azureml://datastores/{job_state.ARTIFACTS_DATASTORE}/paths/{path.strip('/')}"


def _within(path: str, root: str) -> bool:
    path, root = path.strip("/"), root.strip("/")
    return path == root or path.startswith(root + "/")


def _parse_models_uri(source: str) -> tuple[str | None, str | None, str | None]:
    """``models:/<model id>`` → (id, None, None); ``models:/<name>/<version|stage|latest>`` →
    (None, name, version); ``models:/<name>@<alias>`` → (None, name, "@alias")."""
    parsed = urllib.parse.urlsplit(source)
    if parsed.netloc:
        raise _invalid_source(source, "Registered model sources must use this workspace's registry (no host).")
    parts = [p for p in parsed.path.split("/") if p]
    if len(parts) == 1 and "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        return None, name, "@" + alias
    if len(parts) == 1:
        return parts[0], None, None
    if len(parts) == 2:
        return None, parts[0], parts[1]
    raise _invalid_source(source, "Expected models:/<model id>, models:/<name>/<version> or models:/<name>@<alias>.")


def _logged_model_location(session: Session, ws_id: int, model_id: str, source: str) -> tuple[str, str | None]:
    try:
        row = logged_model(session, ws_id, model_id)
    except NotFoundError as exc:
        raise _invalid_source(source, f"Logged model '{model_id}' does not exist in this workspace.") from exc
    if not row.artifact_location.startswith(ARTIFACTS_PREFIX):
        raise _invalid_source(source, f"Logged model '{model_id}' has no files in this workspace.")
    run = run_store.name_of(session, row.job_id)
    return row.artifact_location[len(ARTIFACTS_PREFIX) :], run


def _latest_in_stage(session: Session, container: AssetContainerRow, stage: str) -> AssetVersionRow:
    versions = versions_of(session, [container.id])
    if stage.lower() != "latest":
        wanted = stage_arg(stage)
        versions = [v for v in versions if canonical_stage(v.stage) == wanted]
    if not versions:
        raise NotFoundError(f"No versions of model '{container.name}' in stage '{stage}'.")
    return max(versions, key=version_key)


def lineage(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> Lineage:
    """Resolve a ``model-versions/create`` request's source, checked as MLflow's server checks
    it: a ``runs:/`` source names the run given as ``run_id``; an artifact-store URI lies inside
    the root of the run (``run_id``) or logged model (``model_id``) given; a local path is refused
    (this server cannot read the client's disk)."""
    source = str_arg(data, "source")
    run_id = str(data.get("run_id") or "") or None
    model_id = str(data.get("model_id") or "") or None
    if any(p == ".." for p in urllib.parse.unquote(source).replace("\\", "/").split("/")):
        raise _invalid_source(source, "It may not contain '..' segments.")
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        run_row, model_root = None, ""
        if run_id:
            no_separator(run_id, "run_id")
            run_row = job_rows.find(session, ws_id, run_id)
            if run_row is None:
                raise _invalid_source(source, f"Run '{run_id}' (run_id) does not exist in this workspace.")
        if model_id and scheme != "models":
            model_root, _ = _logged_model_location(session, ws_id, no_separator(model_id, "model_id"), source)
        if scheme == "models":
            ref_id, name, version = _parse_models_uri(source)
            if ref_id is not None:
                if model_id and model_id != ref_id:
                    raise _invalid_source(source, "The model_id request parameter must name the same logged model.")
                root, run = _logged_model_location(session, ws_id, ref_id, source)
                return Lineage(source, _store_uri(root), run_id or run, ref_id)
            assert name is not None and version is not None
            container = container_row(session, ws_id, name)
            if version.startswith("@"):
                row = model_rows.find_alias(session, container.id, version[1:])
                if row is None:
                    raise NotFoundError(f"Registered model alias {version[1:]} not found.")
            elif version.isdigit():
                row = version_row(session, container, version)
            else:
                row = _latest_in_stage(session, container, version)
            props = row.spec.get("properties") or {}
            return Lineage(
                f"models:/{name}/{row.version}",
                row.spec["path"],
                run_id or props.get(PROP_RUN) or row.spec.get("job_name"),
                model_id or props.get(PROP_MODEL),
            )
    if scheme == "runs":
        ref = parse_path(source)
        if run_id and ref.run_id != run_id:
            raise _invalid_source(source, "The run_id request parameter must name the run of the runs:/ URI.")
        try:
            path, job = job_references.resolve_path_reference(
                ctx, workspace, KIND, source, f"model version source {source!r}"
            )
        except NotFoundError as exc:
            raise _invalid_source(source, exc.message) from exc
        return Lineage(source, path, job, model_id)
    artifact = _artifact_path(source)
    if artifact is not None:
        if model_id and _within(artifact, model_root):
            return Lineage(source, _store_uri(artifact), run_id, model_id)
        if run_row is not None and _within(artifact, job_state.artifacts_prefix(run_row.name)):
            return Lineage(source, _store_uri(artifact), run_id, model_id)
        raise _invalid_source(
            source,
            "An artifact URI must lie inside the artifacts of the run (run_id) or the logged model (model_id) given.",
        )
    try:
        ref = parse_path(source)
    except SpecError as exc:
        raise _invalid_source(source, exc.message) from exc
    if ref.scheme == "local":
        raise _invalid_source(
            source,
            "A local path cannot be registered on a Shoal server: log the model to a run first and register "
            "runs:/<run id>/<path> or models:/<model id>.",
        )
    if ref.scheme in ("job_output", "datastore", "asset"):
        path, job = job_references.resolve_path_reference(
            ctx, workspace, KIND, source, f"model version source {source!r}"
        )
        return Lineage(source, path, run_id or job, model_id)
    return Lineage(source, source, run_id, model_id)  # http(s) and cloud URLs are kept as references
