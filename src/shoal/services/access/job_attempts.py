"""Whether a job token's attempt is still the job's live one: a token printed in a log is worth
nothing once its run has ended or been started again."""

from __future__ import annotations

from shoal.entities.status import TERMINAL
from shoal.services.context import ServiceContext
from shoal.store import jobs as job_rows


def attempt_state(ctx: ServiceContext, workspace: str, job: str, attempt: int) -> str | None:
    """ "live"; "ended" when its job finished or was started again (only its runner's own last
    calls pass); None when the job is gone."""
    with ctx.db.read() as session:
        found = job_rows.status_and_attempt(session, workspace, job)
    if found is None:
        return None
    status, current = found
    # A replaced attempt is "ended" too: its runner's calls reach the service, which answers 409
    # ("replaced") so the runner stops quietly; everything else refuses the token.
    return "ended" if status in TERMINAL or current != attempt else "live"
