"""Job-scoped tokens: what a runner presents to the server.

A token names its workspace, job and attempt and is signed with the server's key, so it grants
read/write on that workspace only, and the server refuses writes from an attempt it has replaced
(a runner that lost contact and came back after the job was started again).

Compute-instance tokens (``shoalci.<workspace>.<instance>.<session>.<signature>``) are what a
dev box's notebooks present: signed with the same key, valid while that start (session) of the
instance runs, with the rights its starter holds in the workspace (``services/compute/instances.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PREFIX = "shoaljob"
INSTANCE_PREFIX = "shoalci"


@dataclass(frozen=True)
class JobClaim:
    workspace: str
    job: str
    attempt: int


@dataclass(frozen=True)
class InstanceClaim:
    workspace: str
    compute: str
    session: str


class JobTokenSigner:
    def __init__(self, key_file: Path) -> None:
        self._key = self._load_or_create(key_file)

    @staticmethod
    def _load_or_create(path: Path) -> bytes:
        if path.exists():
            return path.read_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        try:
            os.link(tmp, path)  # never overwrites: two servers starting at once share one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_bytes()

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, workspace: str, job: str, attempt: int) -> str:
        payload = f"{PREFIX}.{workspace}.{job}.{attempt}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> JobClaim | None:
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != PREFIX or not parts[3].isdigit():
            return None
        payload = ".".join(parts[:4])
        if not hmac.compare_digest(parts[4], self._sign(payload)):
            return None
        return JobClaim(parts[1], parts[2], int(parts[3]))

    def issue_instance(self, workspace: str, compute: str, session: str) -> str:
        payload = f"{INSTANCE_PREFIX}.{workspace}.{compute}.{session}"
        return f"{payload}.{self._sign(payload)}"

    def verify_instance(self, token: str) -> InstanceClaim | None:
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != INSTANCE_PREFIX or not parts[3]:
            return None
        if not hmac.compare_digest(parts[4], self._sign(".".join(parts[:4]))):
            return None
        return InstanceClaim(parts[1], parts[2], parts[3])
