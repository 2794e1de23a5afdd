"""Helpers shared by the routers: the guarded route decorator and request accessors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from shoal.server.auth import Permission, Require
from shoal.services.context import ServiceContext
from shoal.store.paging import Page


def guarded(router: APIRouter, method: str, path: str, permission: Permission, **kwargs: Any):  # type: ignore[no-untyped-def]
    """Register a route that needs a bearer token with ``permission``."""
    return router.api_route(path, methods=[method], dependencies=[Depends(Require(permission))], **kwargs)


def ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def page_body(page: Page[Any]) -> dict[str, Any]:
    return {"value": page.items, "next_page_token": page.next_page_token}
