"""``ml_client.online_endpoints`` and ``ml_client.online_deployments``, as in azure-ai-ml.

``begin_create_or_update`` of a deployment uploads its local model and code first (the code
folder becomes an anonymous code asset, as for components), and its poller waits until the
deployment is ``Succeeded`` (or raises with the server's reason when it is ``Failed``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from shoal.client.operations import _as_dict, _entity, _Group
from shoal.client.transport import API_PREFIX, Transport
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.errors import InvalidStateError, NotFoundError, ServerUnavailableError, ShoalError, UserError

DONE_STATES = ("Succeeded", "Failed", "Canceled")


class DeploymentFailedError(ShoalError):
    code = "DEPLOYMENT_FAILED"
    http_status = 409


class ScoringError(ShoalError):
    """A scoring request answered with an error status (401, 404, 408, 429, 5xx)."""

    code = "SCORING_ERROR"


class LROPoller:
    """What ``begin_*`` returns: ``result()`` polls until the operation is done."""

    def __init__(self, poll: Any, timeout: float | None = None) -> None:
        self._poll = poll
        self._value: Any = None
        self._done = False

    def result(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done:
            self._done, self._value = self._poll()
            if self._done:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the operation did not finish in time")
            time.sleep(0.2)
        return self._value

    def wait(self, timeout: float | None = None) -> None:
        self.result(timeout)

    def done(self) -> bool:
        if not self._done:
            self._done, self._value = self._poll()
        return self._done

    def status(self) -> str:
        return "Succeeded" if self.done() else "InProgress"


class EndpointAuthKeys:
    """``get_keys``' answer: ``primary_key`` and ``secondary_key`` (to_dict: Azure's camelCase)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.primary_key = body.get("primaryKey")
        self.secondary_key = body.get("secondaryKey")

    def to_dict(self) -> dict[str, Any]:
        return {"primaryKey": self.primary_key, "secondaryKey": self.secondary_key}


class AccessToken:
    """``get_keys``' answer for an ``aml_token`` endpoint (azure-ai-ml's ``AccessToken``)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.access_token = body.get("accessToken")
        self.expiry_time_utc = body.get("expiryTimeUtc")
        self.refresh_after_time_utc = body.get("refreshAfterTimeUtc")
        self.token_type = body.get("tokenType", "Bearer")

    def to_dict(self) -> dict[str, Any]:
        return {
            "accessToken": self.access_token,
            "expiryTimeUtc": self.expiry_time_utc,
            "refreshAfterTimeUtc": self.refresh_after_time_utc,
            "tokenType": self.token_type,
        }


class EndpointGroup(_Group):
    """What online and batch endpoint groups share: create or update, get, list, delete, by the
    REST collection ``plural`` (``onlineEndpoints``, ``batchEndpoints``)."""

    kind = ""
    plural = ""
    what = ""  # "an online endpoint", for errors

    @property
    def _base(self) -> str:
        return f"{self._wsp}/{self.plural}"

    def begin_create_or_update(self, endpoint: Any, **_: Any) -> LROPoller:
        body = _as_dict(self.kind, endpoint)
        name = body.get("name")
        if not name:
            raise UserError(f"{self.what} needs a name")
        for key in ("scoring_uri", "openapi_uri", "provisioning_state", "id"):  # read-only
            body.pop(key, None)
        created = self._t.request("PUT", f"{self._base}/{name}", json=body)
        return LROPoller(lambda: (True, _entity(self.kind, created)))

    def get(self, name: str) -> Any:
        return _entity(self.kind, self._t.request("GET", f"{self._base}/{name}"))

    def list(self, **_: Any) -> Iterator[Any]:
        return (_entity(self.kind, e) for e in self._t.paged(self._base))

    def begin_delete(self, name: str, **_: Any) -> LROPoller:
        self._t.request("DELETE", f"{self._base}/{name}")
        return LROPoller(lambda: (True, None))


class OnlineEndpointOperations(EndpointGroup):
    kind = "online_endpoint"
    plural = "onlineEndpoints"
    what = "an online endpoint"

    def get_keys(self, name: str) -> EndpointAuthKeys | AccessToken:
        """The keys (``auth_mode: key``), or an access token (``aml_token``), as azure-ai-ml's."""
        body = self._t.request("POST", f"{self._base}/{name}/listKeys")
        return AccessToken(body) if "accessToken" in body else EndpointAuthKeys(body)

    def begin_regenerate_keys(self, name: str, *, key_type: str = "primary", key_value: str | None = None) -> LROPoller:
        body = {"keyType": key_type, "keyValue": key_value}
        keys = EndpointAuthKeys(self._t.request("POST", f"{self._base}/{name}/regenerateKeys", json=body))
        return LROPoller(lambda: (True, keys))

    def regenerate_keys(
        self, name: str, *, key_type: str = "primary", key_value: str | None = None
    ) -> EndpointAuthKeys:
        return self.begin_regenerate_keys(name, key_type=key_type, key_value=key_value).result()

    def invoke(
        self,
        endpoint_name: str,
        *,
        request_file: str | Path | None = None,
        deployment_name: str | None = None,
        request_body: Any = None,
        **_: Any,
    ) -> str:
        """The scoring answer as text (as azure-ai-ml returns it)."""
        if request_file is not None:
            path = Path(request_file)
            if not path.is_file():
                raise NotFoundError(f"request file '{request_file}' does not exist")
            content = path.read_bytes()
        elif request_body is not None:
            content = request_body if isinstance(request_body, bytes) else json.dumps(request_body).encode()
        else:
            raise UserError("give request_file (or request_body) to invoke an endpoint")
        endpoint = self.get(endpoint_name)
        if endpoint.auth_mode in ("key", "aml_token"):
            credentials = self.get_keys(endpoint_name)
            bearer = credentials.primary_key if isinstance(credentials, EndpointAuthKeys) else credentials.access_token
        else:
            bearer = self._t.token
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
        if deployment_name:
            headers["azureml-model-deployment"] = deployment_name
        return score(self._t, f"{self._base}/{endpoint_name}/score", content, headers)


def score(transport: Transport, path: str, content: bytes, headers: dict[str, str]) -> str:
    try:
        response = transport.http.post(API_PREFIX + path, content=content, headers=headers, timeout=300)
    except httpx.TransportError as exc:
        raise ServerUnavailableError(f"cannot reach the Shoal server at {transport.base_url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            message = response.json().get("message") or response.text
        except (ValueError, AttributeError):
            message = response.text
        err = ScoringError(f"scoring failed with status {response.status_code}: {message}")
        err.http_status = response.status_code  # type: ignore[misc]
        raise err
    return response.text


class OnlineDeploymentOperations(_Group):
    kind = "online_deployment"

    def _base(self, endpoint_name: str) -> str:
        return f"{self._wsp}/onlineEndpoints/{endpoint_name}/deployments"

    def upload_local_files(self, body: dict[str, Any]) -> dict[str, Any]:
        """The local model, code folder and conda file of a deployment body uploaded (or inlined)."""
        from shoal.client.component_files import upload_component_files
        from shoal.client.uploads import upload_path

        model = body.get("model")
        if isinstance(model, str) and not model.startswith("azureml:") and is_local_path(model):
            model = {"path": model}
        if isinstance(model, dict) and is_local_path(str(model.get("path", ""))):
            local = Path(strip_file_prefix(str(model["path"])))
            if not local.exists():
                raise NotFoundError(f"deployment '{body.get('name')}': model path '{model['path']}' does not exist")
            uri = upload_path(self._t, self._ws, str(local), datastore="workspaceblobstore")
            body["model"] = {**model, "path": uri}
        env = body.get("environment")
        conda = env.get("conda_file") if isinstance(env, dict) else None
        if isinstance(conda, str) and "\n" not in conda and is_local_path(conda):
            # A conda file the SDK named by path (YAML files have it inlined by the loader).
            from shoal.entities.loader import load_yaml

            conda_path = Path(strip_file_prefix(conda))
            if not conda_path.is_file():
                raise NotFoundError(f"deployment '{body.get('name')}': conda file '{conda}' does not exist")
            body["environment"] = {**env, "conda_file": load_yaml(conda_path)[0]}
        code = body.get("code_configuration")
        if isinstance(code, dict) and is_local_path(str(code.get("code", ""))):
            holder = upload_component_files(self._t, self._ws, {"name": body.get("name"), "code": code["code"]})
            body["code_configuration"] = {**code, "code": holder["code"]}
        return body

    def begin_create_or_update(self, deployment: Any, **_: Any) -> LROPoller:
        body = _as_dict(self.kind, deployment)
        name, endpoint = body.get("name"), body.get("endpoint_name")
        if not name or not endpoint:
            raise UserError("an online deployment needs a name and an endpoint_name")
        for key in ("provisioning_state", "instances", "metrics", "id"):
            body.pop(key, None)
        body = self.upload_local_files(body)
        self._t.request("PUT", f"{self._base(endpoint)}/{name}", json=body)
        return LROPoller(lambda: self._poll(name, endpoint))

    def _poll(self, name: str, endpoint: str) -> tuple[bool, Any]:
        body = self._t.request("GET", f"{self._base(endpoint)}/{name}")
        state = body.get("provisioning_state")
        if state == "Failed":
            reason = (body.get("properties") or {}).get("error") or "see `shoal online-deployment get-logs`"
            raise DeploymentFailedError(f"deployment '{name}' of endpoint '{endpoint}' failed: {reason}")
        return state in DONE_STATES, _entity(self.kind, body)

    def get(self, name: str, endpoint_name: str) -> Any:
        return _entity(self.kind, self._t.request("GET", f"{self._base(endpoint_name)}/{name}"))

    def list(self, endpoint_name: str, **_: Any) -> Iterator[Any]:
        return (_entity(self.kind, d) for d in self._t.paged(self._base(endpoint_name)))

    def begin_delete(self, name: str, endpoint_name: str, **_: Any) -> LROPoller:
        self._t.request("DELETE", f"{self._base(endpoint_name)}/{name}")
        return LROPoller(lambda: (True, None))

    def get_logs(
        self, name: str, endpoint_name: str, lines: int = 100, container_type: str | None = None, **_: Any
    ) -> str:
        if container_type not in (None, "inference-server", "INFERENCE_SERVER", "storage-initializer"):
            raise InvalidStateError(f"container_type {container_type!r}: Shoal has the inference server's logs only")
        body = self._t.request("GET", f"{self._base(endpoint_name)}/{name}/logs", params={"lines": lines})
        return str(body.get("content") or "")
