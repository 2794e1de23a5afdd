"""Several servers on one database: who is alive, who runs the controllers, and what happens to
the jobs of a server that stopped renewing its lease.

Each server renews a ``server_lease`` row from its dispatcher tick. Queued jobs belong to nobody:
any server's dispatcher may claim one, and the claim is a locked conditional change
(``store/jobs.claim_queued``), so a job starts once. A claimed job records its server
(``claimed_by``): only that server signals or polls its runner, since the runner is a process of
that server's backend. When a server's lease expires, a survivor takes its jobs over
(``take_over_orphans``): a job claimed but not yet launched goes back to ``Queued`` (a new
attempt starts it); a launched one is adopted, watched from then on by its heartbeats alone
(its runner keeps calling whichever server answers the public URL, the restart path; a runner
that cannot reach any server falls silent and its job ends ``Failed``, ``NOT_RESPONDING``)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from pathlib import Path

from shoal.entities.status import OCCUPYING, JobStatus
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.store import jobs as job_rows
from shoal.store import servers as server_rows

logger = logging.getLogger(__name__)
S = JobStatus
CONTROLLERS = "controllers"
MLFLOW_RUN = "mlflow_run"  # jobs created through the MLflow API: never scheduled, never watched
# Jobs without a runner of their own: pipelines and sweeps follow their children
# (pipeline_controller.py, sweeps.py).
NO_RUNNER = (MLFLOW_RUN, "pipeline", "sweep")


def server_id_for(home: Path) -> str:
    """This home's server id, made once and kept in ``$SHOAL_HOME/server.id``: a server restarted
    on the same home is the same server and watches the runners it started, as before."""
    path = home / "server.id"
    try:
        found = path.read_text().strip()
    except OSError:
        found = ""
    if found:
        return found[:64]
    made = f"{socket.gethostname()[:40]}-{secrets.token_hex(6)}"
    path.write_text(made + "\n")
    return made


class Membership:
    """This server's lease and duties. ``lease_seconds``: how long the others wait after the
    last renewal before they take this server's jobs over; renewed every third of it."""

    def __init__(self, ctx: ServiceContext, server_id: str, url: str, lease_seconds: float) -> None:
        self.ctx = ctx
        self.server_id = server_id
        self.url = url
        self.lease_seconds = max(1.0, lease_seconds)
        self._renewed = 0.0
        self._controllers = False

    def renew(self) -> None:
        if time.monotonic() - self._renewed < self.lease_seconds / 3:
            return
        now = job_state.now()
        with self.ctx.db.write() as session:
            server_rows.renew(
                session,
                self.server_id,
                url=self.url,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                now=now,
                ttl=self.lease_seconds,
            )
            self._controllers = server_rows.hold_duty(
                session, CONTROLLERS, self.server_id, now=now, ttl=self.lease_seconds
            )
        self._renewed = time.monotonic()

    @property
    def runs_controllers(self) -> bool:
        """True while this server holds the controllers' duty (one server at a time; a pipeline
        step or a sweep trial is started by that server's controller, then claimed like any job)."""
        return self._controllers

    def watches(self, claimed_by: str | None) -> bool:
        """Whether this server watches a job's runner: its own jobs, and jobs claimed before
        servers had ids (one server then)."""
        return claimed_by is None or claimed_by == self.server_id

    def take_over_orphans(self) -> int:
        """Take over the running jobs of servers whose lease expired; the number taken."""
        with self.ctx.db.read() as session:
            # Read the live servers afresh: one that started since the last renewal is alive.
            live = server_rows.live(session, job_state.now()) | {self.server_id}
            orphans = [r for r in job_rows.owned_elsewhere(session, OCCUPYING, live) if r.type not in NO_RUNNER]
        taken = 0
        for orphan in orphans:
            with self.ctx.db.write() as session:
                row = job_rows.locked(session, orphan.id)
                if row is None or row.claimed_by != orphan.claimed_by or row.status not in OCCUPYING:
                    continue  # another survivor was first, or the job moved on
                previous = row.claimed_by
                if row.status == S.PREPARING and row.runner_handle is None:
                    # Claimed, never launched: queue it again; its next claim is a new attempt,
                    # so a runner its old server started in its last moment is refused.
                    job_state.transition(row, S.QUEUED)
                    row.claimed_by = None
                else:
                    # Launched by another backend: its process handle means nothing here.
                    row.claimed_by = self.server_id
                    row.runner_handle = None
                taken += 1
            logger.warning("took over job %s from server %s (lease expired)", orphan.name, previous)
        if taken:
            self.ctx.notify_jobs()
        return taken

    def release(self) -> None:
        """Stopping cleanly: give up the lease and the duties at once, so the others need not wait
        for them to expire (its runners outlive it; another live
        server on the same database takes them over at once; with none, the same server restarted
        finds them still its own)."""
        with self.ctx.db.write() as session:
            server_rows.release(session, self.server_id)
