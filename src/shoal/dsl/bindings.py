"""Bindings: values that stand for another value in the pipeline and are written as
``${{parent…}}`` expressions. This module holds their base class and the pipeline function's
parameters (``PipelineInput``); a step's ports, also bindings, are in ``dsl.nodes``."""

from __future__ import annotations

from typing import Any

from shoal.dsl.context import Builder
from shoal.errors import UserError


def expr(path: str) -> str:
    """``path`` as a ``${{…}}`` expression."""
    return "${{" + path + "}}"


class Binding:
    """A value standing for another one in the pipeline; it is written as a ``${{…}}`` expression."""

    type: str | None

    def _expression(self) -> str:
        raise NotImplementedError

    def _scope(self) -> Builder | None:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._expression()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._describe()}>"

    def _describe(self) -> str:
        return self._expression()


class PipelineInput(Binding):
    """A parameter of a pipeline function: ``${{parent.inputs.<name>}}``."""

    def __init__(self, builder: Builder, name: str, type_: str | None, value: Any) -> None:
        self._builder = builder
        self.name = name
        self.type = type_
        self._value = value

    def result(self) -> Any:
        """The value the pipeline was called with (or the parameter's default)."""
        return self._value

    def _expression(self) -> str:
        return expr(f"parent.inputs.{self.name}")

    def _scope(self) -> Builder | None:
        return self._builder


def check_scope(binding: Binding, builder: Builder, where: str) -> None:
    """Refuse a binding made in another pipeline function than ``builder``'s."""
    if binding._scope() is not builder:
        raise UserError(
            f"{where}: {binding._describe()} is not part of this pipeline; pass it in as an input "
            "of this pipeline function instead"
        )
