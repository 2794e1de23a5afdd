"""One server per SHOAL_HOME, and a stop that only forgets the server it stopped."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.conftest import Cli


def test_a_second_server_on_the_same_home_refuses_to_start(tmp_path):
    cli = Cli(tmp_path / "home")
    cli("server", "start", "--detach")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "shoal.server.main", "--port", "0"],
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3 and "another Shoal server is running" in second.stderr
        assert "running at" in cli("server", "status").out
    finally:
        cli("server", "stop")
    assert cli("server", "status", check=False).code == 3


def test_stop_leaves_a_newer_servers_file_alone(tmp_path):
    from shoal.client.local_server import _forget
    from shoal.config import ShoalSettings

    settings = ShoalSettings(home=tmp_path)
    settings.server_file.write_text(json.dumps({"pid": 999999, "url": "http://127.0.0.1:1"}))
    _forget(settings, 123)  # another (older) server's pid: the file is not its to remove
    assert settings.server_file.exists()
    _forget(settings, 999999)
    assert not settings.server_file.exists()
