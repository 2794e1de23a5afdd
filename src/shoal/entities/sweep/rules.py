"""Azure's rules across the sweep's parts: which expressions a sampling algorithm takes (grid:
choices only; bayesian: choice, uniform, quniform) and that bayesian takes no early termination."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.entities.sweep.search_space import Choice, SweepDistribution, iter_expressions
from shoal.entities.validation import FieldIssue, spec_error

BAYESIAN_TYPES = ("choice", "uniform", "quniform")


def sweep_rule_issues(
    search_space: Mapping[str, SweepDistribution],
    sampling_algorithm: Any,
    early_termination: Any = None,
) -> list[FieldIssue]:
    """Azure's rules on how the search space, the sampling algorithm and the policy combine.

    Each issue's path is from the sweep job's root; its message names the rule."""
    kind = getattr(sampling_algorithm, "type", sampling_algorithm)
    issues: list[FieldIssue] = []
    if kind == "grid":
        for name, dist in search_space.items():
            if not isinstance(dist, Choice):
                issues.append(
                    FieldIssue(
                        f"search_space.{name}",
                        f"grid sampling needs every parameter to be a choice; {name!r} is {dist.type}",
                    )
                )
            elif dist.nested:
                issues.append(
                    FieldIssue(
                        f"search_space.{name}",
                        f"grid sampling cannot enumerate a nested choice (a choice of sub-spaces); {name!r} has one",
                    )
                )
    elif kind == "bayesian":
        for path, dist in iter_expressions(search_space):
            if dist.type not in BAYESIAN_TYPES:
                issues.append(
                    FieldIssue(
                        path,
                        f"bayesian sampling supports only {', '.join(BAYESIAN_TYPES)} expressions; "
                        f"{path.removeprefix('search_space.')!r} is {dist.type}",
                    )
                )
        if early_termination is not None:
            issues.append(
                FieldIssue(
                    "early_termination",
                    "bayesian sampling does not support early termination; remove early_termination",
                )
            )
    return issues


def check_sweep_rules(
    search_space: Mapping[str, SweepDistribution], sampling_algorithm: Any, early_termination: Any = None
) -> None:
    """Raise one SpecError listing every rule :func:`sweep_rule_issues` finds broken."""
    issues = sweep_rule_issues(search_space, sampling_algorithm, early_termination)
    if issues:
        raise spec_error(
            [{"path": i.path, "line": None, "message": i.message, "type": "invalid"} for i in issues],
            what="sweep job",
        )
