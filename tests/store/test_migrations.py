"""The Alembic chain builds exactly the schema the row classes describe, on both databases,
and running it again (a restart, or two servers starting together) changes nothing."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shoal.store import Database
from shoal.store.tables import Base


def test_chain_matches_the_models(database_url):
    db = Database(database_url)
    db.migrate()
    with db.write_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_migrating_twice_and_concurrently_is_harmless(database_url):
    dbs = [Database(database_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(db: Database) -> None:
        try:
            db.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dbs[0].migrate()
    tables = set(inspect(dbs[0].write_engine).get_table_names())
    for db in dbs:
        db.dispose()
    assert errors == []
    assert {"workspace", "resource", "asset_container", "asset_version", "job", "alembic_version"} <= tables
