"""What a pipeline expands to: the graph's data (``Graph``, ``Leaf`` for a command or sweep step,
``Node`` for a pipeline, ``Value`` for what an input is bound to, ``OutputRef``), the step fields
that carry over into the jobs that run, and how step paths are written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.entities.ports import PRIMITIVE_TYPES

ComponentResolver = Callable[[str, str], dict[str, Any]]
"""``(reference, field)`` → the component's spec as a dict; raises when it does not exist."""

ARTIFACTS = "artifacts"  # every command step's reserved output: its run's artifacts (./outputs, ./logs)
STEP_TYPES = ("command", "pipeline", "sweep", "parallel", "spark")
# A sweep step's own fields, kept as given for the sweep job it becomes.
SWEEP_FIELDS = ("search_space", "sampling_algorithm", "objective", "limits", "early_termination")
# Fields of a step that override its component's, and are copied into the command job that runs.
STEP_JOB_FIELDS = (
    "compute",
    "resources",
    "distribution",
    "environment_variables",
    "limits",
    "environment",
    "code",
    "display_name",
    "description",
    "tags",
    "properties",
    "identity",
    "queue_settings",
    "services",
)
COMPONENT_JOB_FIELDS = ("command", "code", "environment", "resources", "distribution", "environment_variables")


@dataclass(frozen=True)
class OutputRef:
    """Output ``output`` of the leaf step at ``step`` (a step path such as ``train/score_job``)."""

    step: str
    output: str


@dataclass
class Value:
    """What an input is bound to: a literal, a data path, another step's output, or nothing."""

    kind: str  # "literal" | "data" | "output" | "unset"
    literal: Any = None
    path: str | None = None
    ref: OutputRef | None = None
    type: str | None = None
    mode: str | None = None

    @property
    def is_data(self) -> bool:
        return self.kind == "data" or (self.kind == "output" and not self.is_control)

    @property
    def is_control(self) -> bool:
        """Another step's primitive output (a control output): a value known once that step ends."""
        return self.kind == "output" and self.type in PRIMITIVE_TYPES


UNSET = Value("unset")
FAILED = Value("unset")
"""A binding that failed, its error already reported: compared by identity, so that the input it
was given to is not also reported as missing."""


@dataclass
class Leaf:
    """A command step: the command job it runs, its bound inputs and the steps it waits for."""

    path: str
    name: str
    parent: str
    job: dict[str, Any]
    inputs: dict[str, Value]
    outputs: dict[str, dict[str, Any]]
    component: dict[str, Any]
    component_ref: str | None
    deterministic: bool
    depends_on: set[str] = field(default_factory=set)
    kind: str = "command"  # or "sweep": a sweep job whose trial is ``component``


@dataclass
class Node:
    """A pipeline (the root has path ``""``): its inputs, and the leaf outputs its outputs stand for."""

    path: str
    name: str
    parent: str | None
    inputs: dict[str, Value]
    outputs: dict[str, dict[str, Any]]
    bound_outputs: dict[str, OutputRef] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    root: Node
    nodes: dict[str, Node]
    leaves: dict[str, Leaf]
    settings: dict[str, Any]
    warnings: list[str]

    def order(self) -> list[str]:
        """Leaf paths, each after every leaf it waits for."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(path: str) -> None:
            if path in seen:
                return
            seen.add(path)
            for dep in sorted(self.leaves[path].depends_on):
                visit(dep)
            done.append(path)

        for path in self.leaves:
            visit(path)
        return done


def step_path(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def field_of(path: str) -> str:
    """``a/b`` → ``jobs.a.jobs.b`` (where the step sits in the YAML)."""
    return ".".join(f"jobs.{part}" for part in path.split("/")) if path else ""


def join_field(prefix: str, key: str) -> str:
    """``prefix.key`` (``key`` alone at the top): a field path such as ``jobs.train.inputs.lr``."""
    return f"{prefix}.{key}" if prefix else key
