"""``ray start`` for the test clusters, with more patience than Ray's own.

Ray gives a new node's raylet 30 s to register with the GCS (a constant in
``ray._private.node``), which a machine shared by several test runs can miss while the node's
agents import. This wrapper makes the lookup Ray retries in that loop wait up to
``SHOAL_TEST_RAY_START_WAIT`` seconds (default 120) before giving up, then runs ``ray start``
with the arguments it was given. Test infrastructure only; Shoal never starts Ray itself.

A raylet that exited meanwhile never registers (it gives its agents 15 s to write their ports
and ends itself when they are late: a loaded machine): then this ``ray start`` exits at once,
rather than waiting out its patience, and ``tests/raycluster.py`` starts the node again. To
make that rare, the node starts at a higher CPU priority where the test may raise it (as root);
``tests/raycluster.py`` puts the node's processes back to the usual priority once it is up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import ray._private.services as services
from ray.scripts.scripts import main

_get_node = services.get_node
PATIENCE = float(os.environ.get("SHOAL_TEST_RAY_START_WAIT", "120"))
START_NICENESS = -10


def _raylet_exited() -> bool:
    """Whether a raylet this process started has exited (it is left as this process's zombie)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.find("(") + 1 : text.rfind(")")], text[text.rfind(")") + 2 :].split()
        if name == "raylet" and fields[:2] == ["Z", me]:
            return True
    return False


def patient_get_node(*args, **kwargs):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return _get_node(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            if _raylet_exited():
                raise SystemExit("the raylet exited while the node started: see its raylet.out") from None
            time.sleep(0.5)


services.get_node = patient_get_node
# Inherited by every process of the node, so that its agents import within the raylet's 15 s.
# Where Linux shares the CPU between sessions first (autogroups: this ``ray start`` leads a
# session of its own), a niceness only counts within the session: the session's is raised too.
# Not allowed here: the usual priority, and a retry where a node is late.
try:
    os.setpriority(os.PRIO_PROCESS, 0, START_NICENESS)
except OSError:
    pass
try:
    Path("/proc/self/autogroup").write_text(str(START_NICENESS))
except OSError:
    pass

if __name__ == "__main__":
    sys.argv[0] = "ray"
    sys.exit(main())
