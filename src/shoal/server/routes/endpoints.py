"""Online endpoints and deployments, and the scoring route in front of them.

The management routes go through the one permission check (``guarded``). The scoring route is
called with an endpoint key, not a Shoal token: its own dependency (:class:`EndpointKey`) checks
the key, so the route is never open by accident and a deny-by-default check sees who guards it."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response

from shoal.errors import AuthError, PayloadTooLargeError, PermissionDeniedError
from shoal.server.auth import Permission, Principal
from shoal.server.routes.common import base_url, ctx, guarded
from shoal.services.endpoints import openapi, records
from shoal.services.endpoints import tokens as endpoint_tokens
from shoal.services.endpoints.router import DEPLOYMENT_HEADER, Router
from shoal.services.endpoints.supervisor import Supervisor

router = APIRouter(tags=["online endpoints"])
PREFIX = "/workspaces/{workspace}/onlineEndpoints"
DEPLOYMENTS = PREFIX + "/{endpoint}/deployments"
MAX_SCORING_BODY = 100 * 1024 * 1024  # Azure's limit on a managed online endpoint request


def sup(request: Request) -> Supervisor:
    return request.app.state.endpoints  # type: ignore[no-any-return]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class EndpointKey:
    """The scoring routes' authentication. ``auth_mode: key``: one of the endpoint's keys.
    ``aml_token`` (and ``aad_token``): an access token from ``get-credentials`` for this endpoint,
    or the caller's own Shoal token (the request gate signed it in) holding the ``score`` right in
    the workspace (Owner, Contributor, AzureML Data Scientist; not Reader), as Azure's
    onlineEndpoints/score/action. Deny by default: an unknown endpoint is a 401 like a wrong key,
    so a caller without a key learns nothing about which endpoints exist."""

    async def __call__(self, request: Request, workspace: str, name: str) -> None:
        scoring: Router = request.app.state.scoring
        view = scoring.supervisor.endpoints.get((workspace, name))
        if view is None:
            raise AuthError(f"no valid key for online endpoint '{name}' (or there is no such endpoint)")
        bearer = _bearer(request)
        if not bearer:
            what = "<key>" if view.auth_mode == "key" else "<token>"
            raise AuthError(f"this endpoint needs an 'Authorization: Bearer {what}' header")
        if view.auth_mode == "key":
            if not any(hmac.compare_digest(bearer.encode(), k.encode()) for k in view.keys.values() if k):
                raise AuthError("the key is not one of this endpoint's keys")
            return
        if endpoint_tokens.verify(view.keys.get("primaryKey") or "", bearer, workspace, name):
            return
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            raise AuthError(
                "the token is not valid for this endpoint: use `shoal online-endpoint get-credentials` "
                "(accessToken) or your own Shoal token"
            )
        if Permission.SCORE not in principal.permissions_in(workspace):
            raise PermissionDeniedError(
                f"'{principal.name}' may not score online endpoints in workspace '{workspace}': that takes the "
                "score right (Owner, Contributor or AzureML Data Scientist)"
            )


@router.post(PREFIX + "/{name}/score", dependencies=[Depends(EndpointKey())], include_in_schema=True)
async def score(request: Request, workspace: str, name: str) -> Response:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_SCORING_BODY:
        raise PayloadTooLargeError(f"request body over {MAX_SCORING_BODY} bytes")
    body = await request.body()
    scoring: Router = request.app.state.scoring
    answer = await scoring.score(
        workspace,
        name,
        body,
        request.headers.get("content-type", "application/json"),
        pinned=request.headers.get(DEPLOYMENT_HEADER),
    )
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=answer.media_type)


@router.get(PREFIX + "/{name}/swagger.json", dependencies=[Depends(EndpointKey())], include_in_schema=True)
async def swagger(request: Request, workspace: str, name: str) -> dict[str, Any]:
    """The endpoint's OpenAPI document (its ``openapi_uri``), with the same key or token as scoring."""
    view = sup(request).endpoints[(workspace, name)]
    uri = records.scoring_uri(base_url(request), workspace, name)
    return openapi.document(uri, workspace, name, view)


# -- endpoints ---------------------------------------------------------------------------------


@guarded(router, "GET", PREFIX, Permission.READ)
def list_endpoints(request: Request, workspace: str) -> dict[str, Any]:
    return {"value": records.list_endpoints(ctx(request), workspace, base_url(request)), "next_page_token": None}


@guarded(router, "PUT", PREFIX + "/{name}", Permission.WRITE)
def put_endpoint(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return records.put_endpoint(ctx(request), sup(request), workspace, name, spec, base_url(request))


@guarded(router, "GET", PREFIX + "/{name}", Permission.READ)
def get_endpoint(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return records.get_endpoint(ctx(request), workspace, name, base_url(request))


@guarded(router, "DELETE", PREFIX + "/{name}", Permission.WRITE, status_code=204)
def delete_endpoint(request: Request, workspace: str, name: str) -> None:
    records.delete_endpoint(ctx(request), sup(request), workspace, name)


@guarded(router, "POST", PREFIX + "/{name}/listKeys", Permission.WRITE)
def list_keys(request: Request, workspace: str, name: str) -> dict[str, Any]:
    """The keys (auth_mode key), or an access token for the caller (aml_token), as Azure's."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return records.get_keys(ctx(request), workspace, name, holder=principal.name if principal else "anonymous")


@guarded(router, "POST", PREFIX + "/{name}/regenerateKeys", Permission.WRITE)
def regenerate_keys(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    key_type = str(body.get("keyType") or body.get("key_type") or "primary").lower()
    value = body.get("keyValue") or body.get("key_value")
    return records.regenerate_keys(ctx(request), sup(request), workspace, name, key_type, value)


# -- deployments -------------------------------------------------------------------------------


@guarded(router, "GET", DEPLOYMENTS, Permission.READ)
def list_deployments(request: Request, workspace: str, endpoint: str) -> dict[str, Any]:
    value = records.list_deployments(ctx(request), sup(request), workspace, endpoint)
    return {"value": value, "next_page_token": None}


@guarded(router, "PUT", DEPLOYMENTS + "/{name}", Permission.WRITE)
def put_deployment(
    request: Request, workspace: str, endpoint: str, name: str, spec: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    return records.put_deployment(ctx(request), sup(request), workspace, endpoint, name, spec)


@guarded(router, "GET", DEPLOYMENTS + "/{name}", Permission.READ)
def get_deployment(request: Request, workspace: str, endpoint: str, name: str) -> dict[str, Any]:
    return records.get_deployment(ctx(request), sup(request), workspace, endpoint, name)


@guarded(router, "DELETE", DEPLOYMENTS + "/{name}", Permission.WRITE, status_code=204)
def delete_deployment(request: Request, workspace: str, endpoint: str, name: str) -> None:
    records.delete_deployment(ctx(request), sup(request), workspace, endpoint, name)


@guarded(router, "GET", DEPLOYMENTS + "/{name}/logs", Permission.READ)
def deployment_logs(request: Request, workspace: str, endpoint: str, name: str, lines: int = 100) -> dict[str, Any]:
    return records.get_logs(ctx(request), sup(request), workspace, endpoint, name, lines)
