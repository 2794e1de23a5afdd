"""Helpers shared by the routers: the guarded route decorator and request accessors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.from_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

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


CHUNK = 1024 * 1024


def body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as a plain iterator, for a writer running in a worker thread: each chunk
    is pulled from the event loop as the writer asks for it, so nothing is buffered whole."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = anyio.from_thread.run(stream.__anext__)
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk


def file_response(store: Any, rel: str) -> FileResponse | StreamingResponse:
    """A stored file as a response: sent by the OS when it is on local disk, else streamed."""
    local = store.local_path(rel)
    if local is not None:
        return FileResponse(local, media_type="application/octet-stream")

    def chunks() -> Iterator[bytes]:
        with store.open_read(rel) as fh:
            while block := fh.read(CHUNK):
                yield block

    return StreamingResponse(chunks(), media_type="application/octet-stream")
