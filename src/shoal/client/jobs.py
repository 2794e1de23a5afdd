"""``ml_client.jobs``: submit, get, list, stream, cancel, download, update, archive, metrics."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from shoal.client.downloads import download_uri
from shoal.client.git_info import add_git_properties
from shoal.client.metric_summary import summarize
from shoal.client.operations import Poller, _Group, _list_view
from shoal.client.pipelines import LocalPaths, stream_pipeline
from shoal.client.transport import Transport
from shoal.entities.base import Entity
from shoal.entities.kinds import parse_entity
from shoal.errors import (
    AuthError,
    InternalError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    ShoalError,
    SpecError,
    UserError,
)

TERMINAL = ("Completed", "Failed", "Canceled")
HISTORY_PAGE = 25000  # points per get-history request, as the MLflow client asks
ARTIFACTS_DATASTORE = "workspaceartifactstore"


class JobFailedError(ShoalError):
    """The job did not complete (SDK: azure-ai-ml raises JobException from stream)."""

    code = "JOB_FAILED"
    http_status = 400


def _job(body: dict[str, Any]) -> Any:
    return parse_entity("job", body, source="server response")


def _check_sweep(body: dict[str, Any]) -> None:
    """A sweep's search space, sampling, policy, objective and limits, and Azure's rules across them."""
    from shoal.entities.sweep import (
        Objective,
        SweepJobLimits,
        check_sweep_rules,
        parse_early_termination,
        parse_sampling_algorithm,
        parse_search_space,
    )

    space = parse_search_space(body.get("search_space"))
    algorithm = parse_sampling_algorithm(body.get("sampling_algorithm"))
    policy = parse_early_termination(body.get("early_termination"))
    check_sweep_rules(space, algorithm, policy)
    try:
        Objective.model_validate(body.get("objective") or {})
        SweepJobLimits.model_validate(body.get("limits") or {})
    except ValueError as exc:
        raise SpecError(f"sweep job: objective or limits: {exc}") from None


def _job_body(job: Any) -> dict[str, Any]:
    if isinstance(job, Entity):
        return job.to_dict()
    if isinstance(job, dict):
        return dict(job)
    from shoal import dsl

    if isinstance(job, dsl.PipelineFunction):
        raise UserError(f"{job!r} is a pipeline function: call it, and submit the PipelineJob it returns")
    if isinstance(job, dsl.Node):
        raise UserError(f"{job!r} is a pipeline step: build it inside a @dsl.pipeline function and submit that")
    raise UserError(f"expected a job, got {type(job).__name__}")


class JobOperations(_Group):
    def __init__(self, transport: Transport, workspace: str, code_ops: Any) -> None:
        super().__init__(transport, workspace)
        self._code_ops = code_ops

    @property
    def _base(self) -> str:
        return f"{self._wsp}/jobs"

    # -- submit ------------------------------------------------------------------------------

    def create_or_update(
        self,
        job: Any,
        *,
        description: str | None = None,
        compute: str | None = None,
        tags: dict[str, str] | None = None,
        experiment_name: str | None = None,
        skip_validation: bool = False,
        **_: Any,
    ) -> Any:
        body = _job_body(job)
        for key, value in (("description", description), ("compute", compute), ("experiment_name", experiment_name)):
            if value is not None:
                body[key] = value
        if tags:
            body["tags"] = {**(body.get("tags") or {}), **tags}
        if not body.get("experiment_name"):
            # Azure ML's default: the name of the folder the job was submitted from.
            body["experiment_name"] = Path.cwd().name or "Default"
        # Where the code came from (git repository, branch, commit), as azure-ai-ml records it.
        body = add_git_properties(body)
        body = self._upload_local_paths(body)
        created = self._t.request("POST", self._base, json=body)
        # What the server accepted but flagged (a pipeline's unknown setting, an undeclared input):
        # shown as az ml shows its warnings, not part of the job.
        for warning in created.pop("warnings", None) or []:
            warnings.warn(str(warning), UserWarning, stacklevel=2)
        return _job(created)

    def _upload_local_paths(self, body: dict[str, Any]) -> dict[str, Any]:
        """Command and pipeline jobs alike: code, data inputs, build contexts and local component
        files (``client/pipelines.py``); every path is checked before anything is uploaded."""
        return LocalPaths(self._t, self._ws).prepare(body)

    def validate(self, job: Any, *, raise_on_failure: bool = False) -> list[str]:
        """Check a job's spec without submitting it (fields, types, ``${{…}}`` references).

        Returns the problems found (empty when valid); with ``raise_on_failure`` raises the
        SpecError instead. References to workspace objects are checked at submission."""
        return self.validate_with_warnings(job, raise_on_failure=raise_on_failure)[0]

    def validate_with_warnings(self, job: Any, *, raise_on_failure: bool = False) -> tuple[list[str], list[str]]:
        """:meth:`validate`, plus the warnings Azure ML would give and accept (pipelines).

        A pipeline is expanded as the server will: local component files are loaded (nothing is
        uploaded), registered components are fetched, and every binding, type and required input
        is checked; all problems are reported together, each naming its step and field."""
        body = _job_body(job)
        try:
            parse_entity("job", body, source="job")
            if body.get("type") == "sweep":
                _check_sweep(body)
                return [], []
            if body.get("type") != "pipeline":
                return [], []
            from shoal.entities.pipeline_graph.expander import expand

            inlined = LocalPaths(self._t, self._ws).inline(body)
            graph = expand(inlined, self._registered_component)
        except SpecError as exc:
            if raise_on_failure:
                raise
            problems = [str(e.get("message", e)) for e in exc.details.get("errors", [])] or [exc.message]
            return problems, [str(w) for w in exc.details.get("warnings", [])]
        except NotFoundError as exc:
            if raise_on_failure:
                raise
            return [exc.message], []
        return [], list(graph.warnings)

    def _registered_component(self, ref: str, where: str) -> dict[str, Any]:
        from shoal.entities.refs import parse_asset_ref

        parsed = parse_asset_ref(ref, kind="component")
        path = f"{self._wsp}/components/{parsed.name}"
        if parsed.version:
            path += f"/versions/{parsed.version}"
        else:
            path += f"/labels/{parsed.label or 'latest'}"
        try:
            return dict(self._t.request("GET", path))
        except NotFoundError as exc:
            raise SpecError(f"{where}: component {ref!r} not found ({exc.message})") from None

    # -- read --------------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        return _job(self._t.request("GET", f"{self._base}/{name}"))

    def list(
        self,
        *,
        parent_job_name: str | None = None,
        list_view_type: Any = "ActiveOnly",
        max_results: int | None = None,
        status: str | None = None,
    ) -> Iterator[Any]:
        params = {"parent_job_name": parent_job_name, "list_view_type": _list_view(list_view_type), "status": status}
        return (_job(j) for j in self._t.paged(self._base, params, limit=max_results))

    def read_log(self, name: str, path: str, offset: int = 0) -> tuple[bytes, int]:
        """Bytes of a job log from ``offset``, and the log's current size."""
        response = self._t.http.get(
            f"/api/v1{self._base}/{name}/logs", params={"path": path, "offset": offset, "limit": 1024 * 1024}
        )
        if response.status_code >= 400:
            self._t._decode(response)
        return response.content, int(response.headers.get("X-Log-Size", "0"))

    def stream(self, name: str, *, out: TextIO | None = None, poll: float = 0.25, raise_on_failure: bool = True) -> Any:
        """Print the job's log as it grows until the job ends (Ctrl-C stops streaming, not the job).

        For a pipeline: each step's status changes (``[train_job] Queued → Running``), reused
        steps, then the pipeline's end; nested pipelines' steps included."""
        out = out or sys.stdout
        body = self._t.request("GET", f"{self._base}/{name}")
        if body.get("type") in ("pipeline", "sweep"):
            return self._stream_pipeline(name, out, max(poll, 0.5), raise_on_failure)
        job = _job(body)
        out.write(f"RunId: {name}\nWeb View: {self._t.base_url}/studio/workspaces/{self._ws}/jobs/{name}\n\n")
        out.flush()
        logs = _log_files(job)
        offsets = dict.fromkeys(logs, 0)
        shown_build = False
        while True:
            status = self._t.request("GET", f"{self._base}/{name}")["status"]
            for path in logs:
                data, _ = self.read_log(name, path, offsets[path])
                if data:
                    if path.startswith("system_logs") and not shown_build:
                        out.write("Preparing the environment:\n")
                        shown_build = True
                    out.write(data.decode("utf-8", errors="replace"))
                    out.flush()
                    offsets[path] += len(data)
            if status in TERMINAL:
                # One more read: the runner ships its last lines before it reports.
                for path in logs:
                    data, _ = self.read_log(name, path, offsets[path])
                    if data:
                        out.write(data.decode("utf-8", errors="replace"))
                break
            time.sleep(poll)
        job = self.get(name)
        out.write(f"\nExecution Summary\n=================\nRunId: {name}\nStatus: {job.status}\n")
        if job.error:
            out.write(f"Error: {job.error.get('message', job.error)}\n")
        out.flush()
        if raise_on_failure and job.status != "Completed":
            message = (job.error or {}).get("message") or f"job {name} ended {job.status}"
            raise JobFailedError(f"job {name} {job.status}: {message}", details={"status": job.status})
        return job

    def _stream_pipeline(self, name: str, out: TextIO, poll: float, raise_on_failure: bool) -> Any:
        body, steps = stream_pipeline(self._t, self._ws, name, out=out, poll=poll)
        status = body.get("status")
        if raise_on_failure and status != "Completed":
            message = (body.get("error") or {}).get("message")
            if not message:
                failed = [s.get("display_name") or s["name"] for s in steps if s.get("status") == "Failed"]
                message = f"step {', '.join(failed)} failed" if failed else f"job {name} ended {status}"
            raise JobFailedError(f"job {name} {status}: {message}", details={"status": status})
        return _job(body)

    def get_metrics(
        self, name: str, metric: str | None = None, *, page_size: int = HISTORY_PAGE
    ) -> list[dict[str, Any]]:
        """Every point the job logged, of each metric (or only ``metric``), as rows
        ``{"name", "step", "value", "timestamp"}`` (timestamp in ms), ordered by name, then by
        step and timestamp. Paged through the workspace's MLflow ``metrics/get-history`` route."""
        logged = sorted((self.get(name).metrics or {}).keys())
        if metric is not None:
            if metric not in logged:
                known = ", ".join(logged) if logged else "none"
                raise NotFoundError(f"job {name} has no metric '{metric}' (its metrics: {known})")
            logged = [metric]
        rows: list[dict[str, Any]] = []
        for key in logged:
            rows.extend({"name": key, **point} for point in self.get_metric_history(name, key, page_size=page_size))
        return rows

    def get_metrics_summary(
        self, name: str, metric: str | None = None, *, goal: str | None = None
    ) -> list[dict[str, Any]]:
        """Per metric: ``count``, ``last``, ``min``/``max`` with their steps and the ``best`` value and
        step for ``goal`` (``maximize``/``minimize``; by default ``minimize`` for names containing
        ``loss`` or ``error``, else ``maximize``). See :mod:`shoal.client.metric_summary`."""
        return summarize(self.get_metrics(name, metric), goal)

    def get_metric_history(self, name: str, metric: str, *, page_size: int = HISTORY_PAGE) -> Iterator[dict[str, Any]]:
        """The points of one metric, ``{"step", "value", "timestamp"}``, page after page."""
        path = f"{self._wsp}/mlflow/api/2.0/mlflow/metrics/get-history"
        params: dict[str, Any] = {"run_id": name, "metric_key": metric, "max_results": page_size}
        while True:
            body = _mlflow_reply(self._t.http.get(f"/api/v1{path}", params=params))
            for point in body.get("metrics") or []:
                yield {
                    "step": point.get("step", 0),
                    "value": _float(point.get("value")),
                    "timestamp": point["timestamp"],
                }
            token = body.get("next_page_token")
            if not token:
                return
            params["page_token"] = token

    # -- change ------------------------------------------------------------------------------

    def begin_cancel(self, name: str) -> Poller:
        return Poller(_job(self._t.request("POST", f"{self._base}/{name}/cancel")))

    def update(self, name: str, **patch: Any) -> Any:
        clean = {k: v for k, v in patch.items() if v is not None}
        return _job(self._t.request("PATCH", f"{self._base}/{name}", json=clean))

    def archive(self, name: str) -> None:
        self._t.request("POST", f"{self._base}/{name}/archive")

    def restore(self, name: str) -> None:
        self._t.request("POST", f"{self._base}/{name}/restore")

    def download(
        self,
        name: str,
        *,
        download_path: str | Path = ".",
        output_name: str | None = None,
        all: bool = False,
        snapshot: bool = False,
    ) -> Path:
        """``artifacts/`` (logs and ./outputs) and, with ``all`` or ``output_name``,
        ``named-outputs/<output>/`` under ``download_path``, as azure-ai-ml lays them out.
        ``snapshot`` (Shoal's addition) also writes the code that ran to ``snapshot/``."""
        job = self.get(name)
        if snapshot:
            self._download_snapshot(job, Path(download_path) / "snapshot")
        if job.status not in TERMINAL:
            raise InvalidStateError(f"job {name} is {job.status}: download it once it has finished")
        root = Path(download_path)
        outputs = {k: v for k, v in (getattr(job, "outputs", None) or {}).items() if v is not None}
        if output_name is not None and output_name not in outputs and output_name != "artifacts":
            raise NotFoundError(f"job {name} has no output '{output_name}'")
        if output_name in (None, "artifacts") or all:
            # A sweep's outputs and artifacts are its best trial's, as in Azure ML.
            # A reused pipeline step's, the job it was reused from.
            props = job.properties or {}
            reuse = props.get("reuse") if isinstance(props.get("reuse"), dict) else {}
            run = props.get("best_child_run_id") if job.type == "sweep" else reuse.get("from_job")
            uri = f"azureml://datastores/{ARTIFACTS_DATASTORE}/paths/ExperimentRun/dcid.{run or name}/"
            try:
                _download_contents(self._t, self._ws, uri, root / "artifacts")
            except NotFoundError:
                (root / "artifacts").mkdir(parents=True, exist_ok=True)
        wanted = list(outputs) if all else ([output_name] if output_name and output_name != "artifacts" else [])
        for out_name in wanted:
            path = _output_path(outputs[out_name])
            if path:
                try:
                    _download_contents(self._t, self._ws, path, root / "named-outputs" / out_name)
                except NotFoundError:
                    (root / "named-outputs" / out_name).mkdir(parents=True, exist_ok=True)
        return root

    def _download_snapshot(self, job: Any, destination: Path) -> None:
        code = job.code
        if not code:
            raise NotFoundError(f"job {job.name} ran without a code folder: there is no snapshot")
        if code.startswith("azureml:") and not code.startswith("azureml://"):
            name, _, version = code.split(":", 1)[1].partition(":")
            code = self._code_ops.get(name, version=version or "1").path
        _download_contents(self._t, self._ws, code, destination)


def _output_path(output: Any) -> str | None:
    return output.get("path") if isinstance(output, dict) else getattr(output, "path", None)


def _download_contents(transport: Transport, workspace: str, uri: str, destination: Path) -> None:
    """Like download_uri, but a folder's contents land directly in ``destination``."""
    staging = destination.parent / f".{destination.name}.download"
    target = download_uri(transport, workspace, uri, staging)
    destination.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        for item in target.iterdir():
            item.replace(destination / item.name)
    else:
        target.replace(destination / target.name)
    _rmtree(staging)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _log_files(job: Any) -> list[str]:
    distribution = job.distribution.model_dump() if hasattr(job.distribution, "model_dump") else job.distribution
    main = "user_logs/std_log_process_0.txt" if distribution else "user_logs/std_log.txt"
    return ["system_logs/environment_build.txt", main]


def _float(value: Any) -> float:
    """MLflow's JSON spells non-finite values as strings."""
    return float(value) if value is not None else math.nan


def _mlflow_reply(response: Any) -> dict[str, Any]:
    """The JSON of an MLflow route, its ``{"error_code", "message"}`` errors as Shoal's."""
    if response.status_code < 400:
        return response.json() if response.content else {}
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    message = str(payload.get("message") or f"the server answered {response.status_code}")
    code = payload.get("error_code")
    if code == "RESOURCE_DOES_NOT_EXIST" or response.status_code == 404:
        raise NotFoundError(message)
    if code == "INVALID_PARAMETER_VALUE":
        raise UserError(message)
    if code == "UNAUTHENTICATED":
        raise AuthError(message)
    if code == "PERMISSION_DENIED":
        raise PermissionDeniedError(message)
    if "error" in payload:
        Transport._decode(response)
    raise InternalError(f"{code or response.status_code}: {message}")
