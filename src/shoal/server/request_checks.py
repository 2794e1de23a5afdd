"""The one check every request's values pass before a service sees them.

PostgreSQL refuses NUL in text (a 500 when it reached the database), SQLite stores it and then
breaks every tool that reads the name; integers beyond 64 bits overflow both databases; JSON nested
100,000 deep overflows Python's recursion. So every route's path parameters, query parameters and
JSON body are walked once here, and such a value is a 400 naming where it was.

Every route registered through ``routes.common.guarded`` uses :class:`CheckedRoute`; the MLflow
routes, which parse their own bodies, call :func:`parse_json` and :func:`check_values`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from shoal.errors import SpecError, UserError

MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
# Deeper than any real request (an Azure ML pipeline body is under 20 levels); orjson stops at 1024.
MAX_DEPTH = 200
_SHOWN = 120


def _where(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return (out or "body")[:_SHOWN]


def _refuse(where: str, what: str) -> UserError:
    return UserError(f"invalid request: {where} {what}", details={"field": where})


def check_text(value: str, where: str) -> str:
    if "\x00" in value:
        raise _refuse(where, "contains a NUL character (\\x00), which names, tags and values may not hold")
    return value


def check_values(data: Any, root: str = "body") -> Any:
    """Refuse NUL in any string or key, integers outside 64 bits and nesting deeper than
    ``MAX_DEPTH``; returns ``data`` unchanged. Iterative, so depth cannot overflow the stack."""
    stack: list[tuple[Any, list[str | int]]] = [(data, [root])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            check_text(value, _where(path))
        elif isinstance(value, bool) or value is None or isinstance(value, float):
            continue
        elif isinstance(value, int):
            if not MIN_INT64 <= value <= MAX_INT64:
                raise _refuse(_where(path), f"is {value}, beyond the 64-bit integer range [-2^63, 2^63-1]")
        elif isinstance(value, Mapping | list):
            if len(path) > MAX_DEPTH:
                raise _refuse(_where(path[:4]), f"is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, Mapping):
                for key, item in value.items():
                    check_text(str(key), _where([*path, str(key).replace("\x00", "\\x00")]))
                    stack.append((item, [*path, str(key)]))
            else:
                stack.extend((item, [*path, i]) for i, item in enumerate(value))
    return data


def parse_json(raw: bytes) -> Any:
    """orjson, and the standard parser for what orjson refuses but MLflow's server accepts (bare
    ``NaN``/``Infinity`` literals, as Python's ``json.dumps`` writes them). Too deep is a 400,
    not the standard parser's ``RecursionError``; the result has passed :func:`check_values`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise UserError(f"the request body is nested too deeply: {exc}") from None
        try:
            data = json.loads(raw)
        except RecursionError:
            raise UserError("the request body is nested too deeply") from None
        except ValueError as exc2:
            # A SpecError as FastAPI's own (422 on Shoal's routes; MLflow's are 400 for any UserError).
            raise SpecError(f"invalid request: the body is not valid JSON: {exc2}") from None
    return check_values(data)


def check_request_params(request: Request) -> None:
    """Path and query parameters: no NUL (the JSON body is checked when it is parsed)."""
    for key, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, f"path parameter '{key}'")
    for key, value in request.query_params.multi_items():
        check_text(key, "a query parameter's name")
        check_text(value, f"query parameter '{key}'")


_UNSET: Any = object()


class CheckedRequest(Request):
    """A request whose JSON body is parsed by :func:`parse_json` (once)."""

    checked_json: Any = _UNSET

    async def json(self) -> Any:
        if self.checked_json is _UNSET:
            self.checked_json = parse_json(await self.body())
        return self.checked_json


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))


class CheckedRoute(APIRoute):
    """Checks the path and query parameters, and parses JSON bodies with :func:`parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None

        async def checked(request: Request) -> Response:
            check_request_params(request)
            wrapped = CheckedRequest(request.scope, request.receive)
            if takes_json and _is_json(request) and await wrapped.body():
                # Parsed here rather than inside FastAPI's handler, which would turn the error
                # naming the bad value into a bare "error parsing the body".
                await wrapped.json()
            return await handler(wrapped)

        return checked
