"""Progress bars for long transfers (uploads, downloads), on stderr and only where someone watches.

A bar shows when the transfer is over ``THRESHOLD`` bytes and stderr is a terminal, unless the
command asked for machine output: the CLI calls :func:`set_enabled` (False) for an explicit
``-o json|jsonc|yaml|tsv|none`` or ``--only-show-errors``. SDK callers pass ``show_progress=True``
or ``False`` to force it either way. Rich is imported only when a bar is made.
"""

from __future__ import annotations

import sys
from typing import Any

THRESHOLD = 4 * 1024 * 1024
_ENABLED: bool | None = None  # None: a bar where stderr is a terminal


def set_enabled(enabled: bool | None) -> None:
    global _ENABLED
    _ENABLED = enabled


def wanted(total: int, show: bool | None = None) -> bool:
    """Whether a transfer of ``total`` bytes shows a bar (``show`` forces the answer)."""
    if show is not None:
        return show
    if _ENABLED is False or total <= THRESHOLD:
        return False
    return bool(_ENABLED) or sys.stderr.isatty()


def transfer_progress(verb: str, total: int, *, show: bool | None = None) -> Any:
    """A Rich ``Progress`` for ``verb`` ("Uploading", "Downloading") of ``total`` bytes, on
    stderr; disabled (it draws nothing) unless :func:`wanted`."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        TextColumn(f"{verb} {{task.description}}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not wanted(total, show),
        transient=False,
    )


def machine_output(args: list[str]) -> bool:
    """Whether a command line asks for machine-readable output (``-o json`` and the like)."""
    machine = {"json", "jsonc", "yaml", "tsv", "none"}
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output") and i + 1 < len(args) and args[i + 1].lower() in machine:
            return True
        if arg.startswith("--output=") and arg.split("=", 1)[1].lower() in machine:
            return True
        if arg.startswith("-o") and len(arg) > 2 and arg[2:].lstrip("=").lower() in machine:
            return True
    return False
