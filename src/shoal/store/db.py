"""Engine, sessions and start-up migration.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so
concurrent writers queue on the lock instead of failing when a read lock cannot be upgraded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shoal.errors import InfraError, ServerUnavailableError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same for every Shoal server on one database.
PG_MIGRATION_LOCK = 0x5140A1


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _unavailable_or_infra(exc: OperationalError) -> InfraError | ServerUnavailableError:
    """A writer that waited its busy timeout out is told to come back (503), not a broken server."""
    text = str(exc.orig)
    if "database is locked" in text or "database is busy" in text:
        return ServerUnavailableError(
            "the database is busy: another writer held its lock longer than the busy timeout "
            "(SHOAL_DB_BUSY_TIMEOUT); try again",
            details={"retry_after_seconds": 1},
        )
    return InfraError(f"database error: {exc.orig}")


class Database:
    def __init__(self, url: str, *, echo: bool = False, busy_timeout: float = 30.0) -> None:
        self.url = normalize_url(url)
        self.busy_timeout = busy_timeout
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = self._sqlite_engine(immediate=True, echo=echo)
            self.read_engine = self._sqlite_engine(immediate=False, echo=echo)
        else:
            self.write_engine = create_engine(self.url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
            self.read_engine = self.write_engine
        self._write_factory = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_factory = sessionmaker(self.read_engine, expire_on_commit=False)

    def _sqlite_engine(self, *, immediate: bool, echo: bool) -> Engine:
        path = self.url.split("///", 1)[1] if "///" in self.url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        timeout = self.busy_timeout
        engine = create_engine(self.url, echo=echo, connect_args={"check_same_thread": False, "timeout": timeout})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not the driver, emit BEGIN so we can choose IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction, committed on success and rolled back on error."""
        session = self._write_factory()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise _unavailable_or_infra(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        session = self._read_factory()
        try:
            yield session
        except OperationalError as exc:
            raise _unavailable_or_infra(exc) from exc
        finally:
            # close(), not rollback(): rows read here stay readable after the session ends.
            session.close()

    # -- migrations -------------------------------------------------------------------------

    _migrate_lock = threading.Lock()

    def migrate(self) -> None:
        """Apply the Alembic chain up to head; safe when several servers start at once."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self._migrate_lock, self._cross_process_lock() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextlib.contextmanager
    def _cross_process_lock(self) -> Iterator[object]:
        if self.is_sqlite:
            # BEGIN IMMEDIATE on the write engine serialises concurrent first starts.
            with self.write_engine.connect() as conn:
                yield conn
                conn.commit()
            return
        with self.write_engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield conn
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                conn.commit()

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def sqlite_file(url: str) -> str | None:
    if url.startswith("sqlite") and "///" in url:
        return os.path.abspath(url.split("///", 1)[1])
    return None
