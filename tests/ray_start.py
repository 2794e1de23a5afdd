"""``ray start`` for the test clusters, with more patience than Ray's own.

Ray gives a new node's raylet 30 s to register with the GCS (a constant in
``ray._private.node``), which a machine shared by several test runs can miss while the node's
agents import. This wrapper makes the lookup Ray retries in that loop wait up to
``SHOAL_TEST_RAY_START_WAIT`` seconds (default 120) before giving up, then runs ``ray start``
with the arguments it was given. Test infrastructure only; Shoal never starts Ray itself.
"""

from __future__ import annotations

import os
import sys
import time

import ray._private.services as services
from ray.scripts.scripts import main

_get_node = services.get_node
PATIENCE = float(os.environ.get("SHOAL_TEST_RAY_START_WAIT", "120"))


def patient_get_node(*args, **kwargs):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return _get_node(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


services.get_node = patient_get_node

if __name__ == "__main__":
    sys.argv[0] = "ray"
    sys.exit(main())
