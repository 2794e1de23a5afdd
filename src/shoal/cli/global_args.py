"""The flags every ``az`` command takes, and ``az configure --defaults``, for ported scripts.

``-g/--resource-group``, ``--subscription``, ``--debug``, ``--verbose`` and ``--only-show-errors`` are
taken out of the command line before Typer parses it (:func:`strip`), so they work in any position
as in az. The resource group and subscription are accepted for compatibility (Shoal has one
resource group) and recorded in :data:`GLOBALS`; the three others set the log level.

``shoal configure --defaults workspace=NAME group=RG location=…`` writes
``$XDG_CONFIG_HOME/shoal/config.yaml`` (``~/.config/shoal/config.yaml``); the default workspace
applies when neither ``-w`` nor ``SHOAL_WORKSPACE`` names one.

Only the standard library at import time: this runs on every ``shoal`` start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# Flag -> attribute, for flags that take a value.
VALUE_FLAGS = {"-g": "resource_group", "--resource-group": "resource_group", "--subscription": "subscription"}
SWITCHES = {"--debug": "debug", "--verbose": "verbose", "--only-show-errors": "only_show_errors"}
# The keys `shoal configure --defaults` knows (az's names).
DEFAULT_KEYS = ("workspace", "group", "location", "subscription")


class GlobalArgs:
    """What the az global flags said (a plain class: no dataclasses import on every start)."""

    def __init__(self) -> None:
        self.resource_group: str | None = None
        self.subscription: str | None = None
        self.debug = False
        self.verbose = False
        self.only_show_errors = False
        self.ignored: list[str] = []

    def __repr__(self) -> str:
        return f"GlobalArgs({vars(self)})"


GLOBALS = GlobalArgs()


def strip(argv: list[str]) -> tuple[list[str], GlobalArgs]:
    """``argv`` without the az global flags (up to a ``--``), and what they said."""
    found = GlobalArgs()
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        flag, eq, value = arg.partition("=")
        if flag in VALUE_FLAGS and flag.startswith("--") and eq:
            setattr(found, VALUE_FLAGS[flag], value)
        elif arg in VALUE_FLAGS and i + 1 < len(argv):
            setattr(found, VALUE_FLAGS[arg], argv[i + 1])
            i += 1
        elif arg in SWITCHES:
            setattr(found, SWITCHES[arg], True)
        else:
            out.append(arg)
            i += 1
            continue
        found.ignored.append(arg)
        i += 1
    return out, found


def apply(found: GlobalArgs) -> None:
    """Record the flags and set the log level: --debug DEBUG, --verbose INFO, --only-show-errors ERROR."""
    global GLOBALS
    GLOBALS = found
    if not (found.debug or found.verbose or found.only_show_errors):
        return
    import logging

    if found.debug or found.verbose:
        logging.basicConfig(
            level=logging.DEBUG if found.debug else logging.INFO,
            stream=sys.stderr,
            format="%(levelname)s: %(name)s: %(message)s",
        )
        logging.getLogger("shoal").debug("az global flags: %s", found)
    elif found.only_show_errors:
        import warnings

        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        warnings.simplefilter("ignore")


def warn(message: str) -> None:
    """A ``Warning: …`` line on stderr, unless --only-show-errors."""
    if not GLOBALS.only_show_errors:
        print(f"Warning: {message}", file=sys.stderr)


# -- `shoal configure` ------------------------------------------------------------------------


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "shoal" / "config.yaml"


def read_defaults() -> dict[str, str]:
    path = config_path()
    if not path.is_file():
        return {}
    import yaml

    data: Any = yaml.safe_load(path.read_text()) or {}
    defaults = data.get("defaults") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in (defaults or {}).items() if v not in (None, "")}


def write_defaults(pairs: dict[str, str]) -> dict[str, str]:
    """Merge ``pairs`` into the saved defaults (an empty value removes a key, as in az)."""
    import yaml

    path = config_path()
    data: Any = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    defaults = {**(data.get("defaults") or {}), **pairs}
    data["defaults"] = {k: v for k, v in defaults.items() if v not in (None, "")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    return dict(data["defaults"])


def default_workspace(flag: str | None) -> str | None:
    """-w, else SHOAL_WORKSPACE (None: the client reads it), else ``shoal configure``'s workspace,
    else None (the client's "default")."""
    if flag:
        return flag
    if os.environ.get("SHOAL_WORKSPACE"):
        return None
    return read_defaults().get("workspace")
