"""The SDK and the CLI import where POSIX-only modules do not exist (Windows): no fcntl, resource, termios."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_client_and_cli_import_without_posix_only_modules() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("fcntl", "resource", "termios", "pty", "tty", "grp", "pwd"):
            sys.modules[name] = None  # "import fcntl" now raises ImportError, as on Windows
        import shoal
        import shoal.client.ml_client
        import shoal.cli.main
        import shoal.client.local_server
        import shoal.envs.builder
        from filelock import FileLock
        print("imported")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"
