"""The ``shoal`` entry point: nouns as in ``az ml``; errors print ``Error [CODE]: message``.

az's global flags (``-g``, ``--subscription``, ``--debug``, ``--verbose``, ``--only-show-errors``) are
taken out of the command line first (``global_args``), so they work in any position. The command
tree (``shoal.cli.app``) is imported only when needed: ``shoal version`` answers without it.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "NOUN_APPS"):  # the full tree, for tests and tools
        from shoal.cli import app as tree

        return getattr(tree, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    # httpx imports its own command-line tool when imported (click, rich and pygments: ~30 ms of
    # every call); Shoal never runs it, and httpx falls back to a stub when it cannot be imported.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from shoal.cli import global_args

    args, found = global_args.strip(sys.argv[1:] if argv is None else argv)
    global_args.apply(found)
    from shoal.client import progress

    if found.only_show_errors or progress.machine_output(args):
        progress.set_enabled(False)  # no progress bars around machine output
    if args in (["version"], ["--version"]):  # as `shoal version`, without building the tree
        import json

        from shoal import __version__

        print(json.dumps({"shoal": __version__}, indent=2))
        return
    # Plain help and usage errors, as az prints them: Typer's rich help costs ~100 ms per start
    # (rich, markdown-it). TYPER_USE_RICH=1 brings the boxes back.
    os.environ.setdefault("TYPER_USE_RICH", "0")
    from shoal.cli.app import app, light_app
    from shoal.errors import ShoalError

    if os.environ.get("_SHOAL_COMPLETE"):  # the shell asks for completions (`shoal completion`'s script)
        from typer.completion import completion_init

        completion_init()
        tree = app
    else:
        tree = light_app(args)
    try:
        tree(args=args, prog_name="shoal")
    except ShoalError as exc:
        if found.debug:
            import traceback

            traceback.print_exc()
        print(f"Error [{exc.code}]: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
