"""A node handed from one job's command to the next without a gap.

A compute cluster on Ray prepares the next queued job of a full compute on a node that is still
running another job's command (the dispatcher's *followers*, docs/compute-ray.md): its runner
fetches the spec, code and inputs and builds the environment meanwhile, then waits here for its
turn and starts its command the moment the command before it on that node has ended.

The turn is a lock, not a poll: every runner holds an exclusive ``flock`` on ``commands.lock`` in
its run folder while its job's commands run (``CommandsLock``), and a follower, told that file's
path in ``SHOAL_START_AFTER``, waits for a shared lock on it. The kernel lets go of the lock when
the commands end (the runner unlocks before uploading outputs) and also when that runner dies, so
a follower never waits for a runner that is gone.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping
from pathlib import Path

START_AFTER_ENV = "SHOAL_START_AFTER"
LOCK_NAME = "commands.lock"


class CommandsLock:
    """Held by a runner while its job's commands run: the next job on the node waits for it."""

    def __init__(self, run_dir: Path) -> None:
        self._fd: int | None = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def wait_for_turn(cancel: threading.Event, environ: Mapping[str, str] | None = None) -> bool:
    """Wait until the commands of the job before this one on the node have ended (at once when
    this runner follows nobody, or that job's runner never took the lock). False: canceled
    while waiting."""
    path = (os.environ if environ is None else environ).get(START_AFTER_ENV)
    if not path:
        return not cancel.is_set()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return not cancel.is_set()  # that runner is gone with its folder: nothing to wait for
    turn = threading.Event()

    def take() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            pass
        finally:
            os.close(fd)  # the lock was only a signal: nothing is held after it is taken
            turn.set()

    threading.Thread(target=take, name="shoal-wait-for-node", daemon=True).start()
    while not turn.wait(0.2):
        if cancel.is_set():
            return False
    return not cancel.is_set()
