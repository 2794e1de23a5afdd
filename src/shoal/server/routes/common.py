"""Helpers shared by the routers: the guarded route decorator and request accessors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from shoal.server.auth import Permission, Require
from shoal.server.request_checks import CheckedRoute
from shoal.services.context import ServiceContext
from shoal.store.paging import Page


def guarded(router: APIRouter, method: str, path: str, permission: Permission, **kwargs: Any):  # type: ignore[no-untyped-def]
    """Register a route that needs a bearer token with ``permission``; its parameters and JSON
    body pass ``request_checks`` (a router may bring a subclass of ``CheckedRoute``)."""
    route_class = router.route_class if issubclass(router.route_class, CheckedRoute) else CheckedRoute

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(
            path,
            fn,
            methods=[method],
            dependencies=[Depends(Require(permission))],
            route_class_override=route_class,
            **kwargs,
        )
        return fn

    return register


def ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def page_body(page: Page[Any]) -> dict[str, Any]:
    return {"value": page.items, "next_page_token": page.next_page_token}


CHUNK = 1024 * 1024
# Batches of the request body in flight between the event loop and the writer thread.
PIPE_BATCHES = 4
T = TypeVar("T")


async def write_body(request: Request, write: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``write(chunks)`` in a worker thread while the event loop streams the request body to it.

    The loop reads ahead and hands the body over in batches of about ``CHUNK`` bytes (at most
    ``PIPE_BATCHES`` in flight, so nothing is buffered whole): the thread pays one hop to the loop
    per batch instead of one per network read (64 KiB), and receiving overlaps writing. If the body
    ends early (the client went away), ``chunks`` raises instead of ending, so a writer never
    publishes a truncated file; if the writer stops early, the reading stops too."""
    send, receive = anyio.create_memory_object_stream[list[bytes]](PIPE_BATCHES)
    failure: list[BaseException] = []

    async def pump() -> None:
        batch: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                if chunk:
                    batch.append(chunk)
                    size += len(chunk)
                    if size >= CHUNK:
                        await send.send(batch)
                        batch, size = [], 0
            if batch:
                await send.send(batch)
        except anyio.BrokenResourceError:
            pass  # the writer is done (it failed, or it needs no more)
        except BaseException as exc:
            failure.append(exc)
            if not isinstance(exc, Exception):
                raise  # cancellation
        finally:
            send.close()

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                batch = anyio.from_thread.run(receive.receive)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                if failure:
                    raise failure[0] from None
                return
            yield from batch

    # The writer's error leaves as it is, not wrapped in the task group's ExceptionGroup (the pump
    # itself raises nothing but cancellation).
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            result = await anyio.to_thread.run_sync(write, chunks())
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
            error = exc
        finally:
            receive.close()
    if error is not None:
        raise error
    return result


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
