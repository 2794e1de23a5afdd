"""``ml_client.batch_endpoints`` and ``ml_client.batch_deployments``, as in azure-ai-ml.

``invoke`` uploads a local input first and returns the job it started (a command job for a
model deployment, a pipeline job for a pipeline-component one): ``ml_client.jobs.stream(job.name)``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shoal.client.endpoints import EndpointGroup, LROPoller, OnlineDeploymentOperations
from shoal.client.operations import _as_dict, _entity, _Group
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.errors import NotFoundError, UserError


class BatchEndpointOperations(EndpointGroup):
    kind = "batch_endpoint"
    plural = "batchEndpoints"
    what = "a batch endpoint"

    def _input(self, value: Any) -> dict[str, Any]:
        body = value.to_dict() if hasattr(value, "to_dict") else value
        if isinstance(body, str | Path):
            body = {"type": "uri_folder", "path": str(body)}
        if not isinstance(body, dict) or not body.get("path"):
            raise UserError("an invoke input needs a path (a local file or folder, a datastore URI or azureml:<data>)")
        path = str(body["path"])
        if is_local_path(path) and not path.startswith("azureml:"):
            from shoal.client.uploads import upload_path

            local = Path(strip_file_prefix(path))
            if not local.exists():
                raise NotFoundError(f"input '{path}' does not exist")
            kind = "uri_file" if local.is_file() else body.get("type") or "uri_folder"
            body = {
                **body,
                "type": kind,
                "path": upload_path(self._t, self._ws, str(local), datastore="workspaceblobstore"),
            }
        return body

    def invoke(
        self,
        endpoint_name: str,
        *,
        input: Any = None,  # noqa: A002 - azure-ai-ml's name
        inputs: dict[str, Any] | None = None,
        deployment_name: str | None = None,
        experiment_name: str | None = None,
        **_: Any,
    ) -> Any:
        body: dict[str, Any] = {"deployment_name": deployment_name, "experiment_name": experiment_name}
        if input is not None:
            body["input"] = self._input(input)
        if inputs:
            body["inputs"] = {
                k: self._input(v) if hasattr(v, "to_dict") or isinstance(v, dict) else {"type": "string", "value": v}
                for k, v in inputs.items()
            }
        created = self._t.request("POST", f"{self._base}/{endpoint_name}/jobs", json=body)
        return _entity("job", created)

    def list_jobs(self, endpoint_name: str, **_: Any) -> list[Any]:
        return [_entity("job", j) for j in self._t.paged(f"{self._base}/{endpoint_name}/jobs")]


class BatchDeploymentOperations(_Group):
    kind = "batch_deployment"

    def _base(self, endpoint_name: str) -> str:
        return f"{self._wsp}/batchEndpoints/{endpoint_name}/deployments"

    def begin_create_or_update(self, deployment: Any, *, set_default: bool = False, **_: Any) -> LROPoller:
        body = _as_dict(self.kind, deployment)
        name, endpoint = body.get("name"), body.get("endpoint_name")
        if not name or not endpoint:
            raise UserError("a batch deployment needs a name and an endpoint_name")
        body.pop("provisioning_state", None)
        if body.get("type", "model") == "model":
            # The same uploads as an online deployment's: model, code folder, conda file.
            body = OnlineDeploymentOperations(self._t, self._ws).upload_local_files(body)
        params = {"set_default": "true"} if set_default else None
        created = self._t.request("PUT", f"{self._base(endpoint)}/{name}", json=body, params=params)
        return LROPoller(lambda: (True, _entity(self.kind, created)))

    def get(self, name: str, endpoint_name: str) -> Any:
        return _entity(self.kind, self._t.request("GET", f"{self._base(endpoint_name)}/{name}"))

    def list(self, endpoint_name: str, **_: Any) -> Iterator[Any]:
        return (_entity(self.kind, d) for d in self._t.paged(self._base(endpoint_name)))

    def begin_delete(self, name: str, endpoint_name: str, **_: Any) -> LROPoller:
        self._t.request("DELETE", f"{self._base(endpoint_name)}/{name}")
        return LROPoller(lambda: (True, None))
