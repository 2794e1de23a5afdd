"""What the online and batch endpoint/deployment commands share: options, loading and patching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.common import set_overrides
from shoal.errors import UserError

NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Name.")]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint-name", "-e", "--endpoint", help="The endpoint.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")]


def need(value: str | None, flag: str = "--name") -> str:
    if not value:
        raise UserError(f"{flag} is required")
    return value


def load(kind: str, file: Path | None, overrides: list[str] | None, **given: str | None) -> Any:
    """The entity of ``kind`` from ``file`` and ``--set``, with the given flags (those not None) over it."""
    from shoal.cli.kind_flags import load_from

    flags = {k: v for k, v in given.items() if v is not None}
    return load_from(kind, file, set_overrides(overrides or []), flags)


def patched_endpoint(endpoints: Any, name: str | None, sets: list[str] | None) -> Any:
    """The endpoint ``name`` as it is, with ``--set`` applied (an update without --file)."""
    from shoal.entities.loader import apply_overrides

    return apply_overrides(endpoints.get(need(name)).to_dict(), set_overrides(sets))


def patched_deployment(deployments: Any, name: str | None, endpoint_name: str | None, sets: list[str] | None) -> Any:
    """The deployment as it is, with ``--set`` applied (typed) (an update without --file)."""
    from shoal.cli.common import patch_from_sets
    from shoal.entities.loader import apply_overrides

    current = deployments.get(need(name), need(endpoint_name, "--endpoint-name"))
    return apply_overrides(current.to_dict(), [patch_from_sets(sets, typed=True)])


def confirm_or_abort(yes: bool, question: str) -> None:
    if not yes and not typer.confirm(question, default=False):
        raise typer.Abort()
