"""What the server writes into a dev box's folder never follows a link notebook code left there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.compute import devbox


def test_config_json_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    folder = tmp_path / "my-ci"
    files = folder / devbox.BOX / devbox.FILES
    files.mkdir(parents=True)
    victim = tmp_path / "server-secret"
    victim.write_text("keep me")
    (files / devbox.CONFIG).symlink_to(victim)

    devbox.write_config(folder, {"workspace_name": "default"})

    assert victim.read_text() == "keep me"
    written = files / devbox.CONFIG
    assert not written.is_symlink() and json.loads(written.read_text()) == {"workspace_name": "default"}


def test_a_files_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "my-ci"
    (folder / devbox.BOX).mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / devbox.BOX / devbox.FILES).symlink_to(elsewhere)

    with pytest.raises(OSError):
        devbox.write_config(folder, {"workspace_name": "default"})
    assert list(elsewhere.iterdir()) == []
