"""Fixtures for environment tests: a private environment cache per test, uv's package cache shared.

Builds use tiny pure-Python packages (six, idna, iniconfig, tomli) so that, with uv's cache warm,
a build takes well under a second. Tests marked ``slow`` build real curated sets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.envs import EnvBuilder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds a large environment (downloads on a cold uv cache)")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "envs"


@pytest.fixture
def builder(cache_dir: Path) -> EnvBuilder:
    return EnvBuilder(cache_dir)
