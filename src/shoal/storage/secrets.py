"""Encryption at rest for datastore credentials and other stored secrets.

One Fernet key per server home, created on first use, readable by the owner only. Values are
never logged or put in exception messages: errors say what failed, not what was inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from shoal.errors import InfraError, UserError


class SecretBox:
    """Encrypt small JSON objects with the key stored in ``key_file``."""

    def __init__(self, key_file: Path | str) -> None:
        self.key_file = Path(key_file)
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"SecretBox({str(self.key_file)!r})"

    def ensure_key(self) -> None:
        """Create the key now if there is none (a server does at start, so the key exists to be
        copied to the other servers sharing its database before anything is encrypted)."""
        self._box()

    def _box(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                key = self._read_key() if self.key_file.exists() else self._create_key()
                try:
                    self._fernet = Fernet(key)
                except (ValueError, TypeError):
                    raise InfraError(f"{self.key_file} does not hold a valid secret key") from None
            return self._fernet

    def _read_key(self) -> bytes:
        try:
            key = self.key_file.read_bytes().strip()
            if os.name == "posix" and self.key_file.stat().st_mode & 0o077:
                with contextlib.suppress(OSError):
                    os.chmod(self.key_file, 0o600)  # tighten a key someone made world-readable
        except OSError as exc:
            raise InfraError(f"cannot read secret key {self.key_file}: {exc.strerror or exc}") from None
        return key

    def _create_key(self) -> bytes:
        parent = self.key_file.parent
        tmp = parent / f".{self.key_file.name}.{uuid.uuid4().hex}.tmp"
        try:
            if not parent.exists():
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                # link() never overwrites: when two processes race, both end up with the winner's
                # key, and the reader never sees a half-written file.
                os.link(tmp, self.key_file)
            except FileExistsError:
                pass
            except OSError:
                if not self.key_file.exists():
                    os.replace(tmp, self.key_file)  # filesystems without hard links
        except OSError as exc:
            raise InfraError(f"cannot create secret key {self.key_file}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return self._read_key()

    def encrypt(self, obj: dict[str, Any]) -> str:
        """JSON-encode ``obj`` and encrypt it; the token is URL-safe ASCII."""
        if not isinstance(obj, dict):
            raise UserError("secrets must be a JSON object")
        try:
            data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            raise UserError("secrets must contain only JSON values") from None
        return self._box().encrypt(data).decode("ascii")

    def decrypt(self, token: str) -> dict[str, Any]:
        """Decrypt a token made by :meth:`encrypt` with the same key."""
        box = self._box()
        try:
            raw = token.encode("ascii") if isinstance(token, str) else bytes(token)
            obj = json.loads(box.decrypt(raw))
        except (InvalidToken, ValueError, TypeError):
            raise InfraError("cannot decrypt stored secrets: wrong secret.key?") from None
        if not isinstance(obj, dict):
            raise InfraError("cannot decrypt stored secrets: wrong secret.key?")
        return obj
