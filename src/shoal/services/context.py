"""Everything a request handler needs, built once per server from the settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.config import ShoalSettings
from shoal.storage.filesystem import ArtifactStore
from shoal.storage.local_roots import LocalRoots
from shoal.storage.secrets import SecretBox
from shoal.store import Database


@dataclass
class ServiceContext:
    settings: ShoalSettings
    db: Database
    secrets: SecretBox
    artifact_root: str
    # Where local datastores may point (checked at create and at every open).
    local_roots: LocalRoots = field(repr=False, default=None)  # type: ignore[assignment]
    # Datastore file trees, built on first use (see services.files.store_for).
    stores: dict[Any, ArtifactStore] = field(default_factory=dict, repr=False)
    # Set whenever a job is submitted or asked to stop, so the dispatcher looks at once.
    jobs_changed: threading.Event = field(default_factory=threading.Event, repr=False)

    # Runner handles whose runners just reported their outcome (``runner_reported``).
    _reported: list[str] = field(default_factory=list, repr=False)
    _reported_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def notify_jobs(self) -> None:
        self.jobs_changed.set()

    def runner_reported(self, handle: str | None) -> None:
        """A runner reported its job's outcome: what its compute holds for it (a Ray node's
        share) may go to the next job before the runner process has tidied up and exited."""
        if handle:
            with self._reported_lock:
                self._reported.append(handle)

    def take_reported(self) -> list[str]:
        with self._reported_lock:
            taken, self._reported = self._reported, []
        return taken

    @classmethod
    def from_settings(cls, settings: ShoalSettings) -> ServiceContext:
        home = settings.resolved_home()
        home.mkdir(parents=True, exist_ok=True)
        # First: a bad SHOAL_LOCAL_DATASTORE_ROOTS stops the start before anything is opened.
        local_roots = LocalRoots(settings.local_datastore_roots, home, settings.resolved_artifact_root())
        db = Database(settings.resolved_database_url(), busy_timeout=settings.db_busy_timeout)
        return cls(
            settings=settings,
            db=db,
            secrets=SecretBox(Path(settings.secret_key_file)),
            artifact_root=settings.resolved_artifact_root(),
            local_roots=local_roots,
        )

    def close(self) -> None:
        self.db.dispose()
