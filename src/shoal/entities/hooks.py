"""Calls the entity layer makes into the SDK layer, bound late so that entities import no SDK module.

An SDK module registers the hooks it implements when it is imported (the pipeline builder registers
``component_call``: ``component(**inputs)`` as a pipeline step). The ``shoal`` package names in
:data:`PROVIDERS` the module that registers each hook, so that a hook used before that module was
imported still works. This module imports nothing of Shoal but its errors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from shoal.errors import UnsupportedError

COMPONENT_CALL = "component_call"  # (component, args, inputs) -> a pipeline step

_HOOKS: dict[str, Callable[..., Any]] = {}
# Hook name → the module that registers it when imported (filled by the ``shoal`` package).
PROVIDERS: dict[str, str] = {}


def register(name: str, function: Callable[..., Any]) -> None:
    """Make ``function`` what :func:`call` runs for ``name``."""
    _HOOKS[name] = function


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run hook ``name``, importing its provider first if it has not registered yet."""
    function = _HOOKS.get(name)
    if function is None and name in PROVIDERS:
        importlib.import_module(PROVIDERS[name])
        function = _HOOKS.get(name)
    if function is None:
        raise UnsupportedError(f"nothing implements {name!r} here; it needs Shoal's SDK")
    return function(*args, **kwargs)
