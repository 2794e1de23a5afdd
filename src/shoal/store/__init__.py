"""The metadata store: SQLAlchemy 2.x over SQLite (default) or PostgreSQL, one Alembic chain."""

from shoal.store.db import Database

__all__ = ["Database"]
