"""``runtime/batch_driver.py`` as a file of the workspace's blob store, for the jobs that run it
(a batch deployment's, a pipeline's parallel step): it reaches the job as an input, since job
code runs in a sandbox that does not show Shoal's own files (docs/job-isolation.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from shoal.runtime import batch_driver
from shoal.services.context import ServiceContext
from shoal.services.storage import files
from shoal.services.workspaces import DEFAULT_DATASTORE

DRIVER = Path(batch_driver.__file__).resolve()


def driver_uri(ctx: ServiceContext, workspace: str) -> str:
    """The driver's datastore URI, named by its content hash (written once per version)."""
    content = DRIVER.read_bytes()
    rel = f"LocalUpload/shoal-batch-driver-{hashlib.sha256(content).hexdigest()[:16]}/batch_driver.py"
    store = files.store_for(ctx, workspace, DEFAULT_DATASTORE)
    if not store.exists(rel):
        store.write_stream(rel, [content])
    return f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{rel}"
