"""Rendering results as ``az`` does: ``-o json|yaml|table|tsv|none`` after a JMESPath ``--query``."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

from shoal.errors import UserError

# jmespath, yaml and rich are imported where used: most commands need one of them, `--help` none.


class OutputFormat(StrEnum):
    json = "json"
    jsonc = "jsonc"  # colored JSON on a terminal, plain JSON otherwise (as az)
    yaml = "yaml"
    table = "table"
    tsv = "tsv"
    none = "none"


def apply_query(data: Any, query: str | None) -> Any:
    if not query:
        return data
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, data)
    except JMESPathError as exc:
        raise UserError(f"invalid --query {query!r}: {exc}") from exc


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(data: Any, fmt: OutputFormat, *, columns: list[str] | None = None, query: str | None = None) -> None:
    data = apply_query(data, query)
    out = sys.stdout
    if fmt == OutputFormat.none:
        return
    if fmt == OutputFormat.jsonc and out.isatty():
        from rich.console import Console

        Console(soft_wrap=True).print_json(json.dumps(data, default=str), indent=2)
    elif fmt in (OutputFormat.json, OutputFormat.jsonc):
        out.write(json.dumps(data, indent=2, default=str) + "\n")
    elif fmt == OutputFormat.yaml:
        import yaml

        out.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False))
    elif fmt == OutputFormat.tsv:
        _tsv(data, out)
    else:
        _table(data, columns if not query else None)


def _tsv(data: Any, out: Any) -> None:
    """Like az: scalars alone, a mapping's values tab-separated, one line per list item."""
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        if isinstance(row, dict):
            out.write("\t".join(_scalar(v) for v in row.values() if not isinstance(v, (dict, list))) + "\n")
        else:
            out.write(_scalar(row) + "\n")


def _table(data: Any, columns: list[str] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = data if isinstance(data, list) else [data]
    # Piped output has no terminal width; do not squeeze columns as if it were 80 wide.
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 240)
    if not rows:
        console.print("(none)")
        return
    if not all(isinstance(r, dict) for r in rows):
        table = Table("Result")
        for r in rows:
            table.add_row(_scalar(r))
        console.print(table)
        return
    keys = columns or _default_columns(rows)
    table = Table(*[k.replace("_", " ").title() for k in keys])
    for r in rows:
        table.add_row(*[_scalar(_dig(r, k)) for k in keys])
    console.print(table)


def _dig(row: dict[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _default_columns(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in keys and not isinstance(v, (dict, list)) and k not in ("$schema", "id"):
                keys.append(k)
    return keys[:8]
