"""The Alembic chain builds exactly the schema the row classes describe, on both databases,
and running it again (a restart, or two servers starting together) changes nothing."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shoal.store import Database
from shoal.store.tables import Base


# SQLite cannot reflect expression indexes (ix_job_run_order): Alembic skips comparing that one
# there and says so; PostgreSQL compares it.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
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


def test_metric_points_survive_the_0007_rekey_both_ways(database_url, shoal_home, monkeypatch):
    """0007 drops the metric table's surrogate id for a primary key on the point itself: logged
    points are copied over (and back on downgrade), and replays stay idempotent afterwards."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from shoal.config import ShoalSettings
    from shoal.services.context import ServiceContext
    from shoal.services.tracking import metrics as tracking_metrics
    from shoal.services.tracking import runs as tracking_runs
    from shoal.services.workspaces import ensure_default
    from shoal.store.db import MIGRATIONS_DIR

    monkeypatch.setenv("SHOAL_DATABASE_URL", database_url)
    ctx = ServiceContext.from_settings(ShoalSettings())
    ctx.db.migrate()
    ensure_default(ctx)
    run = tracking_runs.create_run(ctx, "default", {"experiment_id": "0"})["run"]["info"]["run_id"]
    batch = {
        "run_id": run,
        "metrics": [{"key": "m", "value": i / 3, "timestamp": 1000, "step": i // 2} for i in range(50)]
        + [{"key": "m", "value": "NaN", "timestamp": 7, "step": 0}],
    }
    tracking_metrics.log_batch(ctx, "default", batch)

    def history() -> list[tuple]:
        page = tracking_metrics.get_metric_history(ctx, "default", {"run_id": run, "metric_key": "m"})
        return [(m["step"], m["timestamp"], m["value"]) for m in page["metrics"]]

    before = history()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with ctx.db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
        conn.commit()
        assert conn.execute(text("SELECT count(*) FROM metric")).scalar() == 51
    ctx.db.migrate()
    assert history() == before and len(before) == 51
    tracking_metrics.log_batch(ctx, "default", batch)  # a replay after the copy adds nothing
    assert history() == before
    ctx.close()


def test_0014_fills_the_metric_rollup_as_the_write_path_keeps_it(database_url, monkeypatch):
    """0014 sums the points already stored into ``metric_rollup`` (floor buckets of 1,024 steps,
    negative steps too, NaN left out): the same rows the write path keeps from then on."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from shoal.config import ShoalSettings
    from shoal.services.context import ServiceContext
    from shoal.services.tracking import metrics as tracking_metrics
    from shoal.services.tracking import runs as tracking_runs
    from shoal.services.workspaces import ensure_default
    from shoal.store.db import MIGRATIONS_DIR

    monkeypatch.setenv("SHOAL_DATABASE_URL", database_url)
    ctx = ServiceContext.from_settings(ShoalSettings())
    ctx.db.migrate()
    ensure_default(ctx)
    run = tracking_runs.create_run(ctx, "default", {"experiment_id": "0"})["run"]["info"]["run_id"]
    points = [{"key": "m", "value": (s % 7) / 2, "timestamp": 1000 + s, "step": s} for s in range(-1500, 3000, 3)]
    points.append({"key": "m", "value": "NaN", "timestamp": 5, "step": 10})
    for start in range(0, len(points), 1000):
        tracking_metrics.log_batch(ctx, "default", {"run_id": run, "metrics": points[start : start + 1000]})
    query = text(
        'SELECT "bucket", "n", "total", "vmin", "vmax", "step_min", "step_max", "ts_min", "ts_max" '
        'FROM metric_rollup ORDER BY "bucket"'
    )
    with ctx.db.read() as session:
        kept = [tuple(r) for r in session.execute(query)]
    assert [b[0] for b in kept] == [-2, -1, 0, 1, 2] and sum(b[1] for b in kept) == len(points) - 1
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with ctx.db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
        conn.commit()
    ctx.db.migrate()
    with ctx.db.read() as session:
        rebuilt = [tuple(r) for r in session.execute(query)]
    assert [b[:2] + b[3:] for b in rebuilt] == [b[:2] + b[3:] for b in kept]
    assert all(abs(a[2] - b[2]) < 1e-9 for a, b in zip(rebuilt, kept, strict=True))
    ctx.close()
