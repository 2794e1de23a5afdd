"""Progress bars: shown on stderr for a long transfer when stderr is a terminal (a real pty),
never when it is not, and never around machine output (``-o json``)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import types

import pytest

from shoal.client import progress
from tests.e2e.conftest import SHOAL, Cli


def _run(cli: Cli, *args: str, tty: bool) -> tuple[str, str]:
    """Run ``shoal args``; with ``tty`` its stderr is a pseudo-terminal. Returns (stdout, stderr)."""
    if not tty:
        result = cli(*args)
        return result.out, result.err
    master, slave = pty.openpty()
    proc = subprocess.Popen([*SHOAL, *args], stdout=subprocess.PIPE, stderr=slave, env=cli.env, text=True)
    os.close(slave)
    err = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError("no output for 120 s")
        try:
            piece = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not piece:
            break
        err += piece
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0, err.decode(errors="replace")
    os.close(master)
    return out, err.decode(errors="replace")


def _asset(tmp_path, name: str) -> str:
    data = tmp_path / f"{name}.bin"
    data.write_bytes(os.urandom(progress.THRESHOLD + 1024 * 1024))  # over the threshold, unique bytes
    spec = tmp_path / f"{name}.yml"
    spec.write_text(f"name: {name}\nversion: 1\ntype: uri_file\npath: {data}\n")
    return str(spec)


def test_a_long_upload_and_download_show_a_bar_on_a_terminal_only(cli, tmp_path):
    _out, err = _run(cli, "data", "create", "--file", _asset(tmp_path, "bar-tty"), tty=True)
    assert "Uploading" in err and "MB" in err
    _out, err = _run(cli, "data", "download", "-n", "bar-tty", "-v", "1", "-p", str(tmp_path / "dl"), tty=True)
    assert "Downloading" in err
    _out, err = _run(cli, "data", "download", "-n", "bar-tty", "-v", "1", "-p", str(tmp_path / "dl2"), tty=False)
    assert "Downloading" not in err

    out, err = _run(cli, "data", "create", "--file", _asset(tmp_path, "bar-json"), "-o", "json", tty=True)
    assert "Uploading" not in err
    assert json.loads(out)["name"] == "bar-json"  # stdout is the JSON and nothing else
    _out, err = _run(cli, "data", "create", "--file", _asset(tmp_path, "bar-pipe"), tty=False)
    assert "Uploading" not in err


@pytest.mark.parametrize(
    ("args", "machine"),
    [
        (["data", "create", "-o", "json"], True),
        (["data", "create", "--output=yaml"], True),
        (["data", "create", "-otsv"], True),
        (["data", "create", "-o", "table"], False),
        (["data", "create"], False),
        (["job", "create", "--", "-o", "json"], False),
    ],
)
def test_machine_output_turns_bars_off(args, machine):
    assert progress.machine_output(args) is machine


def test_bars_only_over_the_threshold_and_when_wanted(monkeypatch):
    monkeypatch.setattr(progress, "_ENABLED", None)
    assert progress.wanted(10, show=True) and not progress.wanted(10**9, show=False)
    assert not progress.wanted(progress.THRESHOLD)  # small: never
    terminal = types.SimpleNamespace(stderr=types.SimpleNamespace(isatty=lambda: True))
    monkeypatch.setattr(progress, "sys", terminal)
    assert progress.wanted(progress.THRESHOLD + 1)
    progress.set_enabled(False)
    assert not progress.wanted(progress.THRESHOLD + 1)
