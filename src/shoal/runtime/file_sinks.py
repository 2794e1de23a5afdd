"""Where a runner's downloads land: a resumable ``.part`` file renamed into place, a small file
written whole (used by ``client.RunnerClient``)."""

from __future__ import annotations

import os
from pathlib import Path


class _PartFile:
    """A download's ``.part`` file: resumable from what it holds (``Range``), renamed into place
    by ``finish``, removed when the transfer fails."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.part")
        self.fh = open(self.tmp, "wb")  # noqa: SIM115 - closed by __exit__
        self.written = 0

    def headers(self) -> dict[str, str]:
        return {"Range": f"bytes={self.written}-"} if self.written else {}

    def begin(self, status: int) -> None:
        if status != 206:  # the whole file comes (again): start over
            self.fh.seek(0)
            self.fh.truncate()
            self.written = 0

    def __call__(self, block: bytes) -> None:
        self.fh.write(block)
        self.written += len(block)

    def finish(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.target)

    def __enter__(self) -> _PartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.fh.closed:
            self.fh.close()
            self.tmp.unlink(missing_ok=True)


def _write_whole(target: Path, data: bytes) -> None:
    """A downloaded file, written under ``.<name>.part`` and renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, target)
