"""The one place that picks the dialect's ``INSERT`` (for ``ON CONFLICT``: SQLite and PostgreSQL
each have their own construct)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert(bind: Session | Connection, table: Any) -> Any:
    """``INSERT`` into ``table`` for the dialect of a session's or a connection's database."""
    dialect = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
