"""docs/cli.md is generated from the commands (scripts/gen_cli_docs.py) and must not drift."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_cli_docs.py"
DOC = ROOT / "docs" / "cli.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_docs", module)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "37")  # the output must not depend on the terminal
    out = tmp_path / "cli.md"
    assert _generator().main(["--out", str(out)]) == 0
    fresh = out.read_text(encoding="utf-8")
    assert DOC.is_file() and DOC.read_text(encoding="utf-8") == fresh, (
        "docs/cli.md is out of date with the CLI: run `python scripts/gen_cli_docs.py` and commit docs/cli.md"
    )


def test_every_command_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for command in ("shoal job create", "shoal job stream", "shoal model create", "shoal server start"):
        assert f"## `{command}`" in text
