"""Compute backends by name, imported on first use, and the Azure compute types Shoal runs.

A backend is registered as ``name -> "package.module:Class"``; ``get_backend(name, **config)``
imports the module the first time that name is asked for (so an optional dependency of one
backend costs nothing to the others) and builds the backend with ``config``.
"""

from __future__ import annotations

import importlib
from typing import Any

from shoal.compute.base import ComputeBackend
from shoal.compute.routing import CLUSTER_COMPUTE_TYPES, RoutedBackend
from shoal.errors import UnsupportedError

DEFAULT_BACKEND = "local"
_BACKENDS: dict[str, str] = {
    "local": "shoal.compute.local:LocalBackend",
    # Needs the shoal[ray] extra; the module imports Ray only when a backend is built.
    "ray": "shoal.compute.raybackend:RayBackend",
}
_LOADED: dict[str, type[Any]] = {}

# Compute references that mean "this machine": none, "local" and Azure ML's serverless compute.
LOCAL_COMPUTE_NAMES: tuple[str | None, ...] = (None, "", "local", "serverless")
# Compute types whose jobs Shoal runs (on this machine); amlcompute caps them at max_instances.
RUNNABLE_COMPUTE_TYPES: tuple[str, ...] = ("amlcompute", "computeinstance", "kubernetes")


def is_local_compute(ref: str | None) -> bool:
    """Whether a job's ``compute`` (without its ``azureml:`` prefix) names no compute resource."""
    return ref in LOCAL_COMPUTE_NAMES


def runs_jobs(compute_type: str) -> bool:
    """Whether Shoal runs jobs on a compute resource of this type."""
    return compute_type == "local" or compute_type in RUNNABLE_COMPUTE_TYPES


def register_backend(name: str, target: str) -> None:
    """Register (or replace) a backend: ``target`` is ``"package.module:Class"``."""
    if ":" not in target:
        raise ValueError(f"backend target must be 'module:Class', not {target!r}")
    _BACKENDS[name] = target
    _LOADED.pop(name, None)


def available_backends() -> tuple[str, ...]:
    """The registered backend names, sorted."""
    return tuple(sorted(_BACKENDS))


def backend_class(name: str) -> type[Any]:
    """The class registered as ``name``, imported on first use."""
    cls = _LOADED.get(name)
    if cls is not None:
        return cls
    target = _BACKENDS.get(name)
    if target is None:
        raise UnsupportedError(
            f"unknown compute backend '{name}'; known backends: {', '.join(available_backends())}",
            details={"kind": "compute_backend", "name": name, "known": list(available_backends())},
        )
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    _LOADED[name] = cls
    return cls


def get_backend(name: str = DEFAULT_BACKEND, **config: Any) -> ComputeBackend:
    """A new backend instance of the backend registered as ``name``, built with ``config``."""
    backend: ComputeBackend = backend_class(name)(**config)
    return backend


def server_backend(home: Any, *, ray_address: str | None = None, advertise_url: str | None = None) -> ComputeBackend:
    """The backend a server's dispatcher uses: ``local`` alone, or with a Ray address, Ray for
    the jobs of compute clusters and ``local`` for the rest (``shoal.compute.routing``)."""
    local = get_backend(DEFAULT_BACKEND, home=home)
    if not ray_address:
        return local
    ray = get_backend("ray", home=home, address=ray_address, advertise_url=advertise_url)
    routed: ComputeBackend = RoutedBackend(default=local, by_type=dict.fromkeys(CLUSTER_COMPUTE_TYPES, ray))
    return routed
