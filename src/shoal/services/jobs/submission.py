"""Job submission: every job type goes to its own module, which checks and resolves it before
anything is stored (a bad job leaves nothing behind)."""

from __future__ import annotations

from typing import Any

from shoal.entities import spark
from shoal.errors import SpecError, UnsupportedError
from shoal.services.context import ServiceContext
from shoal.services.jobs import command, pipeline_submission, sweeps

# Job type → the module that checks, resolves and stores it.
SUBMITTERS = {"command": command.submit, "pipeline": pipeline_submission.submit, "sweep": sweeps.submit}


def _spark(ctx: ServiceContext, workspace: str, clean: dict[str, Any], base_url: str | None) -> dict[str, Any]:
    """A spark job runs as the command job that spark-submits it locally (``shoal.entities.spark``)."""
    problems: list[str] = []
    as_command = spark.as_command(clean, lambda where, why: problems.append(f"{where}: {why}"), "")
    if as_command is None:
        raise SpecError("; ".join(problems))
    return command.submit(ctx, workspace, as_command, base_url)


SUBMITTERS["spark"] = _spark


def submit(ctx: ServiceContext, workspace: str, spec: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    """Validate and resolve a job, then store it Queued; a bad job leaves nothing behind."""
    clean = {k: v for k, v in spec.items() if k not in ("id", "status", "creation_context", "services_status")}
    clean.setdefault("type", "command")
    submitter = SUBMITTERS.get(clean["type"])
    if submitter is None:
        raise UnsupportedError(
            f"job type '{clean['type']}' is not supported yet; command, pipeline, sweep and spark jobs are"
        )
    return submitter(ctx, workspace, clean, base_url)
