"""Every name Shoal's SDK shares with azure-ai-ml takes azure-ai-ml's arguments (issue #16).

The reference is tests/data/azure_ai_ml_signatures.yml, written from azure-ai-ml's documentation.
For each entry, Shoal's object must accept every argument named there (by keyword, and at the
same position where azure-ai-ml takes it positionally) and must require no argument that
azure-ai-ml does not have. Defaults are not compared: Shoal may require what azure-ai-ml only
refuses later (a sweep expression's bounds), and may take more arguments than azure-ai-ml."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "azure_ai_ml_signatures.yml"
ENTRIES: dict[str, str] = yaml.safe_load(REFERENCE.read_text())
P = inspect.Parameter
POSITIONAL = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)


def _resolve(key: str) -> Any:
    module, _, path = key.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _azure(text: str) -> inspect.Signature:
    namespace: dict[str, Any] = {}
    exec(f"def f{text}: pass", namespace)  # noqa: S102 - the reference file's own parameter lists
    return inspect.signature(namespace["f"])


def _shoal(obj: Any) -> list[inspect.Parameter]:
    params = list(inspect.signature(obj).parameters.values())
    if inspect.isfunction(obj) and "." in obj.__qualname__ and params and params[0].name == "self":
        params = params[1:]  # a method read from its class
    return params


def problems(obj: Any, reference: inspect.Signature) -> list[str]:
    params = _shoal(obj)
    by_name = {p.name: p for p in params if p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)}
    positional = [p.name for p in params if p.kind in POSITIONAL]
    takes_varargs = any(p.kind is P.VAR_POSITIONAL for p in params)
    out = []
    for index, ref in enumerate(reference.parameters.values()):
        mine = by_name.get(ref.name)
        if mine is None:
            out.append(f"does not take {ref.name!r}")
            continue
        misplaced = index >= len(positional) or positional[index] != ref.name
        if ref.kind in POSITIONAL and not takes_varargs and misplaced:
            out.append(f"{ref.name!r} is positional argument {index} in azure-ai-ml")
        if ref.kind is P.KEYWORD_ONLY and mine.kind is P.POSITIONAL_ONLY:
            out.append(f"{ref.name!r} must be accepted by keyword")
    names = set(reference.parameters)
    for mine in params:
        required = mine.default is P.empty and mine.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
        if required and mine.name not in names:
            out.append(f"requires {mine.name!r}, which azure-ai-ml does not have")
    return out


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_signature_matches_azure_ai_ml(key: str) -> None:
    found = problems(_resolve(key), _azure(ENTRIES[key]))
    assert not found, f"{key}: " + "; ".join(found)


def test_the_checker_notices_differences() -> None:
    def get(self, name, label=None, *, version=None): ...  # noqa: ANN001, ANN202

    found = problems(get, _azure("(name, version=None, label=None, *, stream=False)"))
    assert "'version' is positional argument 1 in azure-ai-ml" in found
    assert "does not take 'stream'" in found
    assert problems(lambda self, *, must: None, _azure("()")) == ["requires 'must', which azure-ai-ml does not have"]


def test_names_azure_ai_ml_users_import_are_exported() -> None:
    import shoal
    import shoal.mldesigner

    for name in (
        "PipelineJobSettings UserIdentityConfiguration ManagedIdentityConfiguration AmlTokenConfiguration "
        "SweepJob Job command_component"
    ).split():
        assert name in shoal.__all__, name
    assert shoal.mldesigner.command_component is shoal.command_component
    assert shoal.mldesigner.Input is shoal.Input and shoal.mldesigner.Output is shoal.Output
