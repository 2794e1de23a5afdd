"""Errors of environment preparation."""

from __future__ import annotations

from shoal.errors import InfraError


class EnvironmentBuildError(InfraError):
    """A virtual environment could not be built; the message ends with the resolver's last lines.

    It keeps ``INFRA_ERROR`` as its wire code (``shoal.errors`` owns the code table), so a remote
    caller sees an ``InfraError`` with the same message and details (``hash``, ``build_log``).
    """
