"""Keyset paging: a page token is the opaque, encoded sort key of the last row returned."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from shoal.errors import UserError

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_page_token: str | None = None


def encode_token(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> list[Any] | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"invalid page token {token!r}") from exc
    if not isinstance(key, list):
        raise UserError(f"invalid page token {token!r}")
    return key


def clamp_page_size(size: int | None) -> int:
    if size is None:
        return DEFAULT_PAGE_SIZE
    if size < 1:
        raise UserError(f"max_results must be at least 1, got {size}")
    return min(size, MAX_PAGE_SIZE)
