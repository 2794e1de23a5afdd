"""Settings from the environment: an empty SHOAL_* variable counts as unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.config import ShoalSettings


def test_an_empty_home_is_the_default_home_not_the_current_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOAL_HOME", "")
    monkeypatch.setenv("SHOAL_DATABASE_URL", "")
    settings = ShoalSettings()
    assert settings.resolved_home() == (Path.home() / ".shoal").resolve()
    assert settings.resolved_home() != tmp_path.resolve()
    assert settings.resolved_database_url() == f"sqlite:///{settings.resolved_home() / 'shoal.db'}"


def test_a_set_home_is_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path / "h"))
    assert ShoalSettings().resolved_home() == (tmp_path / "h").resolve()
