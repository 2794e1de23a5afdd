"""Where a ``local`` datastore may point: only inside the folders the admin allowed.

A local datastore lets anyone who may read it (job tokens included) read and write every file
under its path with the server's rights, so ``{"type": "local", "path": "/"}`` would hand out the
server's home: its admin token, secret key and database. The path is therefore checked, as a real
path (symlinks followed), when the datastore is created and again every time it is opened:

- it lies inside one of the allowed roots (``SHOAL_LOCAL_DATASTORE_ROOTS``, ``os.pathsep``
  separated; by default ``$SHOAL_HOME/local-datastores``, which the server creates);
- it is not ``/``, and neither contains nor lies inside the server's home or a local artifact
  root (other than inside the default root, a folder of its own under the home).

The same rules hold for the configured roots themselves: a bad root stops the server at start.
"""

from __future__ import annotations

import os
from pathlib import Path

from shoal.errors import PermissionDeniedError, UserError

DEFAULT_ROOT_NAME = "local-datastores"
ENV = "SHOAL_LOCAL_DATASTORE_ROOTS"


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class LocalRoots:
    """The allowed roots and the protected folders of one server."""

    def __init__(self, configured: str | None, home: Path, artifact_root: str | None = None) -> None:
        self.home = _real(home)
        self.default = os.path.join(self.home, DEFAULT_ROOT_NAME)
        self.protected = [self.home]
        if artifact_root and "://" not in artifact_root:
            self.protected.append(_real(artifact_root))
        raw = [p.strip() for p in (configured or "").split(os.pathsep) if p.strip()]
        if raw:
            self.roots = [self._checked_root(p) for p in raw]
        else:
            os.makedirs(self.default, mode=0o700, exist_ok=True)
            self.roots = [self.default]

    def _overlap(self, real: str) -> str | None:
        """Why ``real`` may not be used, or None."""
        if real == os.sep:
            return "it is the file system's root '/'"
        for folder in self.protected:
            if _inside(folder, real):
                return f"it contains the server's own folder '{folder}'"
            if _inside(real, folder) and not _inside(real, self.default):
                return f"it lies inside the server's own folder '{folder}'"
        return None

    def _checked_root(self, raw: str) -> str:
        if not os.path.isabs(raw):
            raise UserError(f"{ENV}: root {raw!r} must be an absolute path")
        real = _real(raw)
        why = self._overlap(real)
        if why is not None:
            raise UserError(f"{ENV}: root {raw!r} is not allowed: {why}")
        return real

    def check(self, path: str, what: str) -> str:
        """The real path of a local datastore's ``path``, or an error naming why it is refused."""
        if path.lower().startswith("file://"):
            path = path[len("file://") :]
        if not os.path.isabs(path):
            raise UserError(f"{what}: path must be an absolute folder path, got {path!r}")
        real = _real(path)
        why = self._overlap(real)
        if why is None and not any(_inside(real, root) for root in self.roots):
            why = f"it is outside the local datastore roots this server allows ({', '.join(self.roots)}; see {ENV})"
        if why is not None:
            raise PermissionDeniedError(f"{what}: path {path!r} is refused: {why}", details={"path": path})
        return real
