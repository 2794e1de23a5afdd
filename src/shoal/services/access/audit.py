"""The audit log: every write, every secret read and every denied request, with who, what, when
and from where.

Requests hand their record to :class:`AuditLog`, which writes them in batches from one thread
(at most ``FLUSH_SECONDS`` later), so a metric logged from a job does not pay a second database
transaction. A crash can lose the last ``FLUSH_SECONDS`` of records; a clean stop writes them all. Records
older than ``SHOAL_AUDIT_RETENTION_DAYS`` (365, Azure Policy's default for workspace logs) are
deleted once an hour.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.records import iso
from shoal.store import access as rows
from shoal.store.paging import clamp_page_size, decode_token, encode_token

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
BATCH = 500
# Records waiting while the database is unreachable; past this the oldest are dropped (and logged).
MAX_PENDING = 100_000
PRUNE_EVERY_SECONDS = 3600
FIELDS = ("actor", "workspace", "action", "method", "path", "status", "outcome", "client", "detail")


class AuditLog:
    def __init__(self, ctx: ServiceContext, retention_days: float = 365.0) -> None:
        self._ctx = ctx
        self._retention = timedelta(days=retention_days)
        self._pruned_at = 0.0
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        # One flush at a time: a reader's flush must wait for the batch the writer thread has taken
        # and not committed yet, or the read misses records it was promised.
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def record(self, **fields: Any) -> None:
        row = {k: fields.get(k) for k in FIELDS}
        row["path"] = str(row["path"] or "")[:1024]
        row["detail"] = str(row["detail"])[:1024] if row["detail"] else None
        row["client"] = str(row["client"] or "")[:255]
        row["at"] = datetime.now(UTC)
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append(row)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="shoal-audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
                    self._pruned_at = time.monotonic()
                    self.prune()
            except Exception:  # noqa: BLE001 - kept pending and tried again; the server keeps serving
                logger.exception("could not write audit records; will retry")

    def prune(self, now: datetime | None = None) -> int:
        """Delete records past the retention; how many went."""
        cutoff = (now or datetime.now(UTC)) - self._retention
        with self._ctx.db.write() as session:
            return rows.delete_audit_before(session, cutoff)

    def flush(self) -> None:
        """Write what is pending now (also called before the audit log is read)."""
        with self._flushing:
            self._flush_pending()

    def _flush_pending(self) -> None:
        while True:
            with self._lock:
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            if not batch:
                return
            try:
                with self._ctx.db.write() as session:
                    rows.add_audit(session, batch)
            except Exception:
                with self._lock:
                    self._pending.extendleft(reversed(batch))
                raise

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the server is stopping; say what was lost
            logger.exception("audit records not written at shutdown: %d", len(self._pending))


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"{name} must be an ISO 8601 time such as 2026-12-05T14:00:00Z, got {value[:60]!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _body(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": iso(row.at),
        "actor": row.actor,
        "workspace": row.workspace,
        "action": row.action,
        "method": row.method,
        "path": row.path,
        "status": row.status,
        "outcome": row.outcome,
        "client": row.client,
        "detail": row.detail,
    }


def list_page(
    ctx: ServiceContext,
    *,
    user: str | None = None,
    workspace: str | None = None,
    since: str | None = None,
    until: str | None = None,
    outcome: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """Records newest first, filtered; ``next_page_token`` continues the listing."""
    if outcome not in (None, "allowed", "denied"):
        raise UserError(f"outcome must be 'allowed' or 'denied', got {outcome!r}")
    start, end = _when(since, "since"), _when(until, "until")
    if start is not None and end is not None and start >= end:
        raise UserError("since must be before until")
    limit = clamp_page_size(max_results)
    key = decode_token(page_token)
    before = int(key[0]) if key and isinstance(key[0], int) else None
    with ctx.db.read() as session:
        found = rows.audit_page(
            session,
            actor=user,
            workspace=workspace,
            since=start,
            until=end,
            outcome=outcome,
            before_id=before,
            limit=limit + 1,
        )
    items = [_body(r) for r in found[:limit]]
    token = encode_token([found[limit - 1].id]) if len(found) > limit else None
    return {"value": items, "next_page_token": token}
