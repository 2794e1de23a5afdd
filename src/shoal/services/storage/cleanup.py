"""Leftovers of a crash, swept at start and then every ``SHOAL_CLEANUP_INTERVAL`` seconds.

A write killed half-way leaves its temporary file (``.shoal-tmp-…`` beside the target, never
visible under the final name); an upload the client abandoned leaves its staging folder. Neither
is ever renamed into place, so both are removed once old enough: temporary files not written for
``SHOAL_TEMP_FILE_MAX_AGE`` seconds (a live write touches its file with every chunk), upload
sessions older than ``SHOAL_UPLOAD_SESSION_TTL`` (after which they are refused anyway).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from shoal.errors import ShoalError
from shoal.services.context import ServiceContext
from shoal.services.storage import files
from shoal.services.workspaces import BUILTIN_DATASTORES
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.uploads import UploadManager
from shoal.store import resources as resource_rows
from shoal.store import workspaces as workspace_rows

logger = logging.getLogger(__name__)


@dataclass
class Swept:
    temp_files: int = 0
    uploads: int = 0


def sweep(ctx: ServiceContext) -> Swept:
    """One pass over the artifact root (every workspace's built-in datastores) and every
    workspace's datastores; a datastore that cannot be opened is logged and skipped."""
    settings = ctx.settings
    out = Swept()
    try:
        root = ArtifactStore(ctx.artifact_root, create=False)
        out.temp_files += root.sweep_temp_files("", older_than_seconds=settings.temp_file_max_age)
    except (ShoalError, OSError) as exc:
        logger.warning("cleanup: cannot sweep the artifact root %s: %s", ctx.artifact_root, exc)
    with ctx.db.read() as session:
        targets = [
            (ws.name, name)
            for ws in workspace_rows.list_rows(session)
            for name in resource_rows.names(session, ws.id, "datastore")
        ]
    for workspace, datastore in targets:
        try:
            store = files.store_for(ctx, workspace, datastore)
            out.uploads += UploadManager(store).gc(settings.upload_session_ttl)
            if datastore not in BUILTIN_DATASTORES and store.is_local:
                out.temp_files += store.sweep_temp_files("", older_than_seconds=settings.temp_file_max_age)
        except (ShoalError, OSError) as exc:
            logger.warning("cleanup: skipped datastore %s/%s: %s", workspace, datastore, exc)
    if out.temp_files or out.uploads:
        logger.info("cleanup: removed %d temporary file(s) and %d expired upload(s)", out.temp_files, out.uploads)
    return out


class Sweeper:
    """The background thread: a sweep at start, then one every ``cleanup_interval`` seconds."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shoal-cleanup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sweep(self.ctx)
            except Exception:  # noqa: BLE001 - the sweeper must outlive any one bad pass
                logger.exception("cleanup pass failed")
            self.passes += 1
            self._stop.wait(max(1.0, self.ctx.settings.cleanup_interval))
