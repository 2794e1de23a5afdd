"""The ``server.json`` file under SHOAL_HOME: which local server is running, and where."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_server_file(path: Path, *, pid: int, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "url": url}))
    os.replace(tmp, path)  # readers never see a half-written file


def read_server_file(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
