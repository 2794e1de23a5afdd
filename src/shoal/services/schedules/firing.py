"""The schedule timer: a server thread that starts each due schedule's job once.

Every ``SHOAL_SCHEDULE_TICK_SECONDS`` it reads the enabled schedules whose ``next_fire_at`` has
come, and for each one *claims* that fire time: one conditional update moves ``next_fire_at``
from the value it read to the following fire time, and only the server whose update matched
starts the job. Two servers on one database therefore start it once; a crash between the claim
and the submission loses that one job rather than starting it twice.

A fire time more than ``SHOAL_SCHEDULE_MISFIRE_GRACE`` seconds late (the server was down) is
skipped, not made up, and the schedule goes on from the next time after now: Azure ML's
schedules do not backfill either (a past ``start_time`` fires first at the next computed time).

The job created is named ``<schedule>-<fire time, UTC, yyyyMMddHHmmss>`` (so a second start of
the same fire time would collide, not duplicate) and carries the schedule's name and fire time
in ``properties`` and ``tags`` (``azureml.scheduleTrigger.scheduleName`` / ``.triggerTime``), so
``shoal job list --query "[?tags.\"azureml.scheduleTrigger.scheduleName\"=='<schedule>']"``
finds them. ``${{name}}`` and ``${{creation_context.trigger_time}}`` in the job are replaced by
that job name and fire time, as Azure ML does.
"""

from __future__ import annotations

import copy
import logging
import threading
from datetime import datetime
from typing import Any

from shoal.entities.kinds import parse_entity
from shoal.entities.schedule import JobSchedule
from shoal.errors import ShoalError
from shoal.services.context import ServiceContext
from shoal.services.jobs import submission
from shoal.services.jobs.state import now as utc_now
from shoal.services.schedules.records import fill_expressions
from shoal.services.schedules.timing import as_utc, next_fire
from shoal.services.workspaces import workspace_id
from shoal.store import schedules as rows

logger = logging.getLogger(__name__)
SCHEDULE_NAME = "azureml.scheduleTrigger.scheduleName"
TRIGGER_TIME = "azureml.scheduleTrigger.triggerTime"


def job_name(schedule: str, fire_at: datetime) -> str:
    return f"{schedule[:230]}-{as_utc(fire_at):%Y%m%d%H%M%S}"


def job_body(schedule: str, spec: dict[str, Any], fire_at: datetime) -> dict[str, Any]:
    """The job a fire submits: the schedule's ``create_job`` named and marked for this fire time."""
    name = job_name(schedule, fire_at)
    when = as_utc(fire_at).isoformat()
    body = fill_expressions(copy.deepcopy(spec["create_job"]), name, when)
    body["name"] = name
    marks = {SCHEDULE_NAME: schedule, TRIGGER_TIME: when}
    body["properties"] = {**(body.get("properties") or {}), **marks}
    body["tags"] = {**(body.get("tags") or {}), SCHEDULE_NAME: schedule}
    return body


def trigger_now(ctx: ServiceContext, workspace: str, name: str, base_url: str | None) -> dict[str, Any]:
    """Start the schedule's job once, now (``az ml schedule trigger``); its fire times stay as they were."""
    fire_at = utc_now()
    with ctx.db.read() as session:
        row = rows.get_row(session, workspace_id(session, workspace), name)
        schedule_id, spec = row.id, dict(row.spec)
    job = submission.submit(ctx, workspace, job_body(name, spec, fire_at), base_url)
    with ctx.db.write() as session:
        rows.record_outcome(session, schedule_id, job["name"], None)
    ctx.notify_jobs()
    return {"job_name": job["name"], "schedule_action_type": "CreateJob"}


class ScheduleTimer:
    def __init__(
        self, ctx: ServiceContext, base_url: str | None, *, tick_seconds: float = 1.0, misfire_grace: float = 60.0
    ) -> None:
        self.ctx = ctx
        self.base_url = base_url
        self.tick_seconds = tick_seconds
        self.misfire_grace = misfire_grace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shoal-schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive any one bad tick
                logger.exception("schedule tick failed")
            self._stop.wait(self.tick_seconds)

    def tick(self, now: datetime | None = None) -> list[str]:
        """Start every due schedule's job once; returns the names of the jobs started."""
        now = now or utc_now()
        with self.ctx.db.read() as session:
            due = rows.due(session, now)
        started = []
        for schedule_id, workspace, name, spec, fire_at in due:
            name_started = self._fire(schedule_id, workspace, name, spec, fire_at, now)
            if name_started:
                started.append(name_started)
        return started

    def _fire(
        self, schedule_id: int, workspace: str, name: str, spec: dict[str, Any], fire_at: datetime, now: datetime
    ) -> str | None:
        try:
            entity = parse_entity("schedule", spec)
            assert isinstance(entity, JobSchedule)
            # The server wrote start_time at creation, so ``created`` is never needed here.
            following = next_fire(entity.trigger, now, created=now)
        except (ShoalError, ValueError) as exc:  # a stored spec that no longer parses: stop it firing
            following, entity = None, None
            error = f"schedule cannot compute its next fire time: {exc}"
        late = (as_utc(now) - as_utc(fire_at)).total_seconds() > self.misfire_grace
        with self.ctx.db.write() as session:
            if not rows.claim(session, schedule_id, fire_at, following, fired=not late and entity is not None):
                return None  # another server took this fire time, or the schedule changed meanwhile
            if entity is None:
                rows.record_outcome(session, schedule_id, None, error)
                return None
        if late:
            logger.warning("schedule %s: skipped fire time %s (missed while the server was down)", name, fire_at)
            return None
        body = job_body(name, spec, fire_at)
        try:
            submission.submit(self.ctx, workspace, body, self.base_url)
        except ShoalError as exc:
            logger.warning("schedule %s: job %s was not started: %s", name, body["name"], exc)
            with self.ctx.db.write() as session:
                rows.record_outcome(session, schedule_id, None, f"{type(exc).__name__}: {exc}")
            return None
        with self.ctx.db.write() as session:
            rows.record_outcome(session, schedule_id, body["name"], None)
        self.ctx.notify_jobs()
        return str(body["name"])
