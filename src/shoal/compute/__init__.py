"""Compute backends: they start and stop runner processes and never touch the store.

``base`` holds the contract (``ComputeBackend``, ``RunnerAttempt``, ``Capabilities``);
``backends`` the backends by name and the Azure compute types Shoal runs jobs on; ``sizes`` what
one node of an Azure VM size offers; ``routing`` several backends behind the contract (Ray for
compute clusters, local for the rest); ``ray_cluster`` what the server watches of its Ray
cluster (reachability, nodes, autoscaler hints). Backend modules (``local``, ``raybackend``) are imported
only when their backend is first asked for.
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
    server_backend,
)
from shoal.compute.base import (
    FORWARDED_SETTINGS,
    RUNNER_NOT_STARTED,
    AttemptKey,
    Capabilities,
    ComputeBackend,
    Handle,
    RunnerAttempt,
    runner_environment,
)
from shoal.compute.ray_cluster import CapacityHint
from shoal.compute.routing import cluster_engine
from shoal.compute.sizes import NodeResources, known_sizes, resources_for

__all__ = [
    "DEFAULT_BACKEND",
    "FORWARDED_SETTINGS",
    "LOCAL_COMPUTE_NAMES",
    "RUNNABLE_COMPUTE_TYPES",
    "RUNNER_NOT_STARTED",
    "AttemptKey",
    "Capabilities",
    "CapacityHint",
    "ComputeBackend",
    "Handle",
    "NodeResources",
    "RunnerAttempt",
    "available_backends",
    "backend_class",
    "cluster_engine",
    "get_backend",
    "is_local_compute",
    "known_sizes",
    "register_backend",
    "resources_for",
    "runner_environment",
    "runs_jobs",
    "server_backend",
]
