"""Two dispatchers with their own server ids on one database (SQLite and PostgreSQL): a queued job
is claimed by one of them only, one holds the controllers' duty, and the jobs of a server whose
lease expired are taken over (started ones adopted, claimed-but-not-launched ones queued again).

The end-to-end version, two real server processes on PostgreSQL with one killed, is
tests/e2e/test_multiserver.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from shoal.services.jobs import state as job_service
from shoal.services.jobs.dispatcher import Dispatcher
from shoal.services.workspaces import workspace_id
from shoal.store.tables import ClusterLeaseRow, ServerLeaseRow
from tests.api.test_jobs_api import FakeBackend, job, submitted


def dispatcher(api, server_id: str) -> Dispatcher:
    d = Dispatcher(
        api.app.state.ctx,
        "http://testserver",
        api.app.state.job_signer,
        backend=FakeBackend(),
        server_id=server_id,
        lease_seconds=30,
    )
    d._started_at = job_service.now() - timedelta(hours=1)
    return d


def row_of(api, name: str):
    with api.app.state.ctx.db.read() as session:
        return job_service.get_row(session, workspace_id(session, "default"), name)


def expire(api, server_id: str) -> None:
    """As if the server had died a minute ago: its lease lapsed."""
    with api.app.state.ctx.db.write() as session:
        session.execute(
            update(ServerLeaseRow)
            .where(ServerLeaseRow.server_id == server_id)
            .values(expires_at=job_service.now() - timedelta(minutes=1))
        )


@pytest.fixture
def pair(api):
    a, b = dispatcher(api, "server-a"), dispatcher(api, "server-b")
    a.cluster.renew()
    b.cluster.renew()
    return a, b


def test_a_queued_job_is_claimed_watched_and_controlled_by_one_server(api, pair):
    a, b = pair
    name = submitted(api, name="once")["name"]
    job_id = row_of(api, name).id
    assert a._claim_and_launch(job_id, None) == "started"
    assert b._claim_and_launch(job_id, None) == "taken"
    row = row_of(api, name)
    assert (row.status, row.attempt, row.claimed_by) == ("Preparing", 1, "server-a")
    assert len(a.backend.launched) == 1 and b.backend.launched == []

    # Only server-a watches the runner it started: server-b cannot see server-a's processes.
    a.backend.running.clear()  # the runner is gone, as server-a's backend sees it
    with api.app.state.ctx.db.write() as session:
        row = job_service.get_row(session, workspace_id(session, "default"), name)
        row.heartbeat_at = job_service.now() - timedelta(seconds=5)
    b.tick()
    assert job(api, name)["status"] == "Preparing"
    a.tick()
    assert job(api, name)["status"] == "Failed"
    assert job(api, name)["error"]["code"] == "RUNNER_LOST"

    # One server holds the controllers' duty until its lease ends.
    assert a.cluster.runs_controllers and not b.cluster.runs_controllers
    expire(api, "server-a")
    with api.app.state.ctx.db.write() as session:
        session.execute(update(ClusterLeaseRow).values(expires_at=job_service.now() - timedelta(minutes=1)))
    b.cluster._renewed = 0.0
    b.cluster.renew()
    assert b.cluster.runs_controllers
    a.cluster._renewed = 0.0
    a.cluster.renew()
    assert not a.cluster.runs_controllers


def test_the_jobs_of_a_server_whose_lease_expired_are_taken_over(api, pair):
    a, b = pair
    started = submitted(api, name="started")["name"]
    a.tick()
    not_launched = submitted(api, name="claimed-not-launched")["name"]
    with api.app.state.ctx.db.write() as session:
        # server-a claimed it and died before it started the runner.
        row = job_service.get_row(session, workspace_id(session, "default"), not_launched)
        row.attempt, row.claimed_by = 1, "server-a"
        job_service.transition(row, "Preparing")
    b.tick()
    assert row_of(api, started).claimed_by == "server-a"  # its lease still runs: nothing moves
    expire(api, "server-a")
    b.tick()
    adopted = row_of(api, started)
    assert (adopted.claimed_by, adopted.attempt, adopted.runner_handle) == ("server-b", 1, None)
    assert adopted.status == "Preparing"  # adopted, not restarted; its heartbeats decide from now on
    requeued = row_of(api, not_launched)
    # Queued again and started by the survivor as a new attempt (the old one's calls are refused).
    assert (requeued.claimed_by, requeued.attempt, requeued.status) == ("server-b", 2, "Preparing")
    assert [r.job for r in b.backend.launched] == [not_launched]
    # An adopted job whose runner stays silent ends clearly, by its heartbeats.
    with api.app.state.ctx.db.write() as session:
        row = job_service.get_row(session, workspace_id(session, "default"), started)
        row.heartbeat_at = job_service.now() - timedelta(seconds=b.heartbeat_timeout * 3)
    b.tick()
    b.tick()
    assert job(api, started)["status"] == "Failed"
    assert job(api, started)["error"]["code"] == "NOT_RESPONDING"
