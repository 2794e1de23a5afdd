"""Whether a job token's attempt is still the job's live one (a token printed in a log is worth
nothing once its run has ended or been started again), and whose role the token carries."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.entities.status import TERMINAL
from shoal.services.access import custom_roles
from shoal.services.access.roles import ALL_PERMISSIONS, BOOTSTRAP_ADMIN, Permission, permissions_of
from shoal.services.context import ServiceContext
from shoal.store import access as access_rows
from shoal.store import jobs as job_rows

# Pipelines and sweeps nest their steps and trials; the submitter is on the top job.
MAX_PARENTS = 20


@dataclass(frozen=True)
class AttemptGrant:
    state: str  # "live" or "ended"
    # What the submitting user may do in the workspace now: a job token never exceeds it.
    submitter_permissions: frozenset[Permission]


def attempt_grant(ctx: ServiceContext, workspace: str, job: str, attempt: int) -> AttemptGrant | None:
    """The attempt's state and its submitter's permissions in one read. The state is "live", or
    "ended" when its job finished or was started again (only its runner's own last calls pass: a
    replaced runner's calls reach the service, which answers 409 so it stops quietly); None when
    the job is gone.

    A job submitted by the server's admin token (or before users existed) carries every right;
    one submitted by a user carries that user's current roles in the workspace (a custom role: what
    it allows of reading jobs and recording runs, ``CustomRole.job_permissions``), so taking a role
    away (or deleting the user) narrows the jobs already running too."""
    with ctx.db.read() as session:
        found = job_rows.token_facts(session, workspace, job)
        if found is None:
            return None
        status, current, ws_id, user, parent = found
        # The job's own submitter, else its pipeline's or sweep's (one more read per level).
        submitter = str(user) if user else access_rows.submitter_chain(session, ws_id, parent, MAX_PARENTS - 1)
        permissions = ALL_PERMISSIONS
        if submitter is not None and submitter != BOOTSTRAP_ADMIN and not submitter.startswith("job:"):
            user = access_rows.find_user(session, submitter)
            if user is None:
                permissions = frozenset()
            elif not user.admin:
                roles = access_rows.roles_by_workspace(session, user.id).get(workspace, [])
                permissions = permissions_of(roles)
                for role in custom_roles.definitions(session, roles).values():
                    permissions |= role.job_permissions()
    state = "ended" if status in TERMINAL or current != attempt else "live"
    return AttemptGrant(state, permissions)
