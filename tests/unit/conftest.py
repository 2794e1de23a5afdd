"""Helpers for the entity unit tests: the YAML test data and error assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.errors import SpecError

YAML_DIR = Path(__file__).resolve().parent.parent / "data" / "yaml"


@pytest.fixture
def yaml_dir() -> Path:
    return YAML_DIR


def assert_spec_error(exc: BaseException, *, file: str | None, line: int | None, fragments: list[str]) -> None:
    """The error is a SpecError whose message names the file, line and every fragment."""
    assert isinstance(exc, SpecError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    if file is not None:
        assert file in message, message
    if line is not None:
        assert f"line {line}:" in message, message
    for fragment in fragments:
        assert fragment in message, message
