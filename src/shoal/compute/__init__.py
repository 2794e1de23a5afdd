"""Compute backends: they start and stop runner processes and never touch the store.

``base`` holds the contract (``ComputeBackend``, ``RunnerAttempt``, ``Capabilities``);
``backends`` the backends by name and the Azure compute types Shoal runs jobs on. Backend
modules (``local``) are imported only when their backend is first asked for.
"""

from shoal.compute.backends import (
    DEFAULT_BACKEND,
    LOCAL_COMPUTE_NAMES,
    RUNNABLE_COMPUTE_TYPES,
    available_backends,
    backend_class,
    get_backend,
    is_local_compute,
    register_backend,
    runs_jobs,
)
from shoal.compute.base import (
    FORWARDED_SETTINGS,
    AttemptKey,
    Capabilities,
    ComputeBackend,
    Handle,
    RunnerAttempt,
    runner_environment,
)

__all__ = [
    "DEFAULT_BACKEND",
    "FORWARDED_SETTINGS",
    "LOCAL_COMPUTE_NAMES",
    "RUNNABLE_COMPUTE_TYPES",
    "AttemptKey",
    "Capabilities",
    "ComputeBackend",
    "Handle",
    "RunnerAttempt",
    "available_backends",
    "backend_class",
    "get_backend",
    "is_local_compute",
    "register_backend",
    "runner_environment",
    "runs_jobs",
]
