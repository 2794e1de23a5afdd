"""The pipeline being built: the thread-local stack of builders that a ``@dsl.pipeline`` call pushes,
so that component and command calls in its body add steps to it; and the error a call with
arguments that do not fit raises."""

from __future__ import annotations

import threading
from typing import Any

from shoal.errors import UserError


class PipelineArgumentError(UserError, TypeError):
    """A pipeline function or a component was called with arguments that do not fit it."""


_state = threading.local()


def stack() -> list[Builder]:
    """The builders of the pipeline functions running in this thread, innermost last."""
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def current() -> Builder | None:
    """The builder of the innermost pipeline function running, if any."""
    builders = stack()
    return builders[-1] if builders else None


def in_pipeline() -> bool:
    """True while a ``@dsl.pipeline`` function body runs (its calls add steps)."""
    return current() is not None


class Builder:
    """The steps (``dsl.Node``) one call of a pipeline function creates, in creation order."""

    def __init__(self, name: str, *, top: bool) -> None:
        self.name = name
        self.top = top  # the pipeline job itself, not a nested pipeline component
        self.nodes: list[Any] = []

    def add(self, node: Any) -> None:
        node.__dict__["_builder"] = self
        self.nodes.append(node)
