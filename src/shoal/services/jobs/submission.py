"""Job submission: every job type goes to its own module, which checks and resolves it before
anything is stored (a bad job leaves nothing behind)."""

from __future__ import annotations

from typing import Any

from shoal.errors import UnsupportedError
from shoal.services.context import ServiceContext
from shoal.services.jobs import command, pipeline_submission, sweeps

# Job type → the module that checks, resolves and stores it.
SUBMITTERS = {"command": command.submit, "pipeline": pipeline_submission.submit, "sweep": sweeps.submit}


def submit(ctx: ServiceContext, workspace: str, spec: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    """Validate and resolve a job, then store it Queued; a bad job leaves nothing behind."""
    clean = {k: v for k, v in spec.items() if k not in ("id", "status", "creation_context", "services_status")}
    clean.setdefault("type", "command")
    submitter = SUBMITTERS.get(clean["type"])
    if submitter is None:
        raise UnsupportedError(f"job type '{clean['type']}' is not supported yet; command, pipeline and sweep jobs are")
    return submitter(ctx, workspace, clean, base_url)
