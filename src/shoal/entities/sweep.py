"""Sweep job parts (``_schema/_sweep/*``, ``azure.ai.ml.sweep``): search space, sampling, policies.

Everything here is declarative: the YAML forms, the SDK classes with Azure's names and
constructor arguments, and Azure's rules about which parts go together. Sampling and early
termination live in ``shoal.services.jobs.sweep_sampling`` and ``…jobs.early_termination``.

Nested choice (Azure's recursive search space): a ``choice`` value may be a dict of name → literal
or expression, so one value picks a sub-space, e.g. ``{type: choice, values: [{kernel: rbf,
gamma: {type: uniform, ...}}, {kernel: linear}]}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from shoal.entities.base import ShoalModel
from shoal.entities.validation import FieldIssue, issues_from_validation, single_issue, spec_error
from shoal.errors import SpecError

# --- numbers ---------------------------------------------------------------------------------


def _number(value: Any) -> Any:
    # pydantic's lax mode takes True for 1 and "0.1" for 0.1; a search space bound never means those.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON round trips may turn 10 into 10.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    if not isinstance(value, int | float | str | bool):
        raise ValueError(
            f"a choice value is a number, a string or a sub-space (a mapping of name → value), got {value!r}"
        )
    return value


Number = Annotated[int | float, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]
Scalar = Annotated[int | float | str | bool, BeforeValidator(_scalar)]
"""A literal a choice may offer (Azure: int, float, str; bool for SDK dicts such as ``{"a": True}``)."""


class _Positional(ShoalModel):
    """Lets SDK classes take Azure's positional arguments: ``Uniform(0.1, 0.5)``, ``Randint(10)``."""

    POSITIONAL: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if len(args) > len(self.POSITIONAL):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.POSITIONAL)} positional arguments")
        for name, value in zip(self.POSITIONAL, args, strict=False):
            if name in data:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            data[name] = value
        super().__init__(**data)

    # Validation of nested data must not come through here (see ShoalModel.__init__).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


# --- search space ----------------------------------------------------------------------------


class SweepDistribution(_Positional):
    """Base of the ten parameter expressions; ``type`` is the YAML discriminator."""

    type: str

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Choice(SweepDistribution):
    """One of ``values``; a dict value is a sub-space (name → literal or expression)."""

    POSITIONAL = ("values",)
    type: Literal["choice"] = "choice"
    values: list[ChoiceValue]

    @model_validator(mode="before")
    @classmethod
    def _values_as_list(cls, data: Any) -> Any:
        # Azure's SDK takes any iterable (``Choice(values=range(1, 5))``).
        if isinstance(data, dict) and isinstance(data.get("values"), range | tuple):
            data = {**data, "values": list(data["values"])}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.values:
            raise FieldIssue("values", "a choice needs at least one value")
        for i, value in enumerate(self.values):
            if isinstance(value, dict) and not value:
                raise FieldIssue(f"values[{i}]", "a nested choice value (a sub-space) cannot be empty")
        return self

    @property
    def nested(self) -> bool:
        """Whether some value is a sub-space (a dict)."""
        return any(isinstance(v, dict) for v in self.values)


class Randint(SweepDistribution):
    """An integer in ``[0, upper)``."""

    POSITIONAL = ("upper",)
    type: Literal["randint"] = "randint"
    upper: Integer = Field(gt=0)


class _Range(SweepDistribution):
    POSITIONAL = ("min_value", "max_value")
    min_value: Number
    max_value: Number

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_value >= self.max_value:
            raise FieldIssue(
                "max_value", f"max_value ({self.max_value}) must be greater than min_value ({self.min_value})"
            )
        return self


class Uniform(_Range):
    """``U(min_value, max_value)``."""

    type: Literal["uniform"] = "uniform"


class LogUniform(_Range):
    """``exp(U(min_value, max_value))``: the bounds are logarithms, so the values lie in [e^min, e^max]."""

    type: Literal["loguniform"] = "loguniform"


class QUniform(_Range):
    """``round(U(min_value, max_value) / q) * q``."""

    POSITIONAL = ("min_value", "max_value", "q")
    type: Literal["quniform"] = "quniform"
    q: Number = Field(gt=0)


class QLogUniform(_Range):
    """``round(exp(U(min_value, max_value)) / q) * q``."""

    POSITIONAL = ("min_value", "max_value", "q")
    type: Literal["qloguniform"] = "qloguniform"
    q: Number = Field(gt=0)


class _Gaussian(SweepDistribution):
    POSITIONAL = ("mu", "sigma")
    mu: Number
    sigma: Number = Field(gt=0)


class Normal(_Gaussian):
    """``N(mu, sigma)``."""

    type: Literal["normal"] = "normal"


class LogNormal(_Gaussian):
    """``exp(N(mu, sigma))``."""

    type: Literal["lognormal"] = "lognormal"


class QNormal(_Gaussian):
    """``round(N(mu, sigma) / q) * q``."""

    POSITIONAL = ("mu", "sigma", "q")
    type: Literal["qnormal"] = "qnormal"
    q: Number = Field(gt=0)


class QLogNormal(_Gaussian):
    """``round(exp(N(mu, sigma)) / q) * q``."""

    POSITIONAL = ("mu", "sigma", "q")
    type: Literal["qlognormal"] = "qlognormal"
    q: Number = Field(gt=0)


DISTRIBUTION_TYPES: dict[str, type[SweepDistribution]] = {
    "choice": Choice,
    "randint": Randint,
    "uniform": Uniform,
    "loguniform": LogUniform,
    "quniform": QUniform,
    "qloguniform": QLogUniform,
    "normal": Normal,
    "lognormal": LogNormal,
    "qnormal": QNormal,
    "qlognormal": QLogNormal,
}


def _expression(value: Any) -> Any:
    if not isinstance(value, Mapping):
        if isinstance(value, SweepDistribution):
            return value
        raise ValueError(f"a search space expression is a mapping with a 'type', got {value!r}")
    data = dict(value)
    type_name = _lower(data.get("type"))
    allowed = ", ".join(DISTRIBUTION_TYPES)
    if type_name is None:
        raise FieldIssue("type", f"a search space expression needs a type; one of: {allowed}", missing=True)
    if type_name not in DISTRIBUTION_TYPES:
        raise FieldIssue("type", f"unknown search space type {type_name!r}; allowed types: {allowed}")
    data["type"] = type_name
    return data


def _expression_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in DISTRIBUTION_TYPES else None


Distribution = Annotated[
    Annotated[Choice, Tag("choice")]
    | Annotated[Randint, Tag("randint")]
    | Annotated[Uniform, Tag("uniform")]
    | Annotated[LogUniform, Tag("loguniform")]
    | Annotated[QUniform, Tag("quniform")]
    | Annotated[QLogUniform, Tag("qloguniform")]
    | Annotated[Normal, Tag("normal")]
    | Annotated[LogNormal, Tag("lognormal")]
    | Annotated[QNormal, Tag("qnormal")]
    | Annotated[QLogNormal, Tag("qlognormal")],
    Discriminator(_expression_kind),
    BeforeValidator(_expression),
]
"""A parameter expression: the YAML mapping or an SDK instance."""


def _entry_kind(value: Any) -> str:
    # Inside a sub-space, a mapping is an expression (Azure's ChoiceSchema: expressions or literals).
    return "expression" if isinstance(value, Mapping | SweepDistribution) else "literal"


def _value_kind(value: Any) -> str:
    return "sub_space" if isinstance(value, Mapping) else "literal"


def _sub_space(value: Any) -> Any:
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"sub-space names are strings, got {key!r}")
    return value


SubSpaceEntry = Annotated[
    Annotated[Distribution, Tag("expression")] | Annotated[Scalar, Tag("literal")], Discriminator(_entry_kind)
]
ChoiceValue = Annotated[
    Annotated[dict[str, SubSpaceEntry], Tag("sub_space")] | Annotated[Scalar, Tag("literal")],
    Discriminator(_value_kind),
    BeforeValidator(_sub_space),
]

Choice.model_rebuild()

SEARCH_SPACE: TypeAdapter[dict[str, Distribution]] = TypeAdapter(dict[str, Distribution])


def _raise_from(exc: ValidationError, data: Any, prefix: str) -> SpecError:
    issues = issues_from_validation(exc, data)
    for issue in issues:
        issue["path"] = f"{prefix}.{issue['path']}" if issue["path"] else prefix
    return spec_error(issues, what=prefix)


def parse_search_space(data: Any) -> dict[str, SweepDistribution]:
    """``search_space:`` → name → expression; a SpecError names ``search_space.<name>.<field>``."""
    if not isinstance(data, Mapping) or not data:
        raise single_issue("search_space", "a non-empty mapping of name → expression is needed")
    try:
        return SEARCH_SPACE.validate_python(dict(data))
    except ValidationError as exc:
        raise _raise_from(exc, data, "search_space") from None


def iter_expressions(space: Mapping[str, Any], prefix: str = "search_space") -> Iterator[tuple[str, SweepDistribution]]:
    """Every expression with its path, nested choice sub-spaces included (``p.values[1].gamma``)."""
    for name, dist in space.items():
        path = f"{prefix}.{name}"
        yield path, dist
        if isinstance(dist, Choice):
            for i, value in enumerate(dist.values):
                if isinstance(value, dict):
                    sub = {k: v for k, v in value.items() if isinstance(v, SweepDistribution)}
                    yield from iter_expressions(sub, f"{path}.values[{i}]")


# --- sampling algorithms ---------------------------------------------------------------------


class RandomSamplingAlgorithm(ShoalModel):
    """``random``: independent draws (``rule: random``) or a scrambled Sobol sequence (``sobol``).

    ``logbase`` is the base of the log-distributions (a positive number or ``"e"``, the default)."""

    type: Literal["random"] = "random"
    seed: Integer | None = None
    rule: Literal["random", "sobol"] | None = None
    logbase: Number | Literal["e"] | None = None

    @field_validator("rule", mode="before")
    @classmethod
    def _lower_rule(cls, value: Any) -> Any:
        return _lower(value)

    @model_validator(mode="after")
    def _base(self) -> Self:
        if isinstance(self.logbase, int | float) and (self.logbase <= 0 or self.logbase == 1):
            raise FieldIssue("logbase", "logbase must be a positive number other than 1, or 'e'")
        return self

    @property
    def base(self) -> float:
        return math.e if self.logbase in (None, "e") else float(self.logbase)


class GridSamplingAlgorithm(ShoalModel):
    """``grid``: every combination of an all-``choice`` space, once each."""

    type: Literal["grid"] = "grid"


class BayesianSamplingAlgorithm(ShoalModel):
    """``bayesian``: each trial chosen from the results of the earlier ones."""

    type: Literal["bayesian"] = "bayesian"


SAMPLING_TYPES: dict[str, type[ShoalModel]] = {
    "random": RandomSamplingAlgorithm,
    "grid": GridSamplingAlgorithm,
    "bayesian": BayesianSamplingAlgorithm,
}
RANDOM_ONLY = ("seed", "rule", "logbase")


def _sampling(value: Any) -> Any:
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    type_name = _lower(data.get("type"))
    allowed = ", ".join(SAMPLING_TYPES)
    if type_name is None:
        raise FieldIssue("type", f"a sampling algorithm needs a type; one of: {allowed}", missing=True)
    if type_name not in SAMPLING_TYPES:
        raise FieldIssue("type", f"unknown sampling algorithm {type_name!r}; allowed: {allowed}")
    if type_name != "random":
        for key in RANDOM_ONLY:
            if data.get(key) is not None:
                what = "the sobol rule" if key == "rule" and _lower(data[key]) == "sobol" else f"{key!r}"
                raise FieldIssue(key, f"{what} applies only to random sampling, not to {type_name}")
    data["type"] = type_name
    return data


def _sampling_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in SAMPLING_TYPES else None


SamplingAlgorithm = Annotated[
    Annotated[RandomSamplingAlgorithm, Tag("random")]
    | Annotated[GridSamplingAlgorithm, Tag("grid")]
    | Annotated[BayesianSamplingAlgorithm, Tag("bayesian")],
    Discriminator(_sampling_kind),
    BeforeValidator(_sampling),
]
"""``sampling_algorithm:``: a name (``random``) or a mapping (``{type: random, seed: 1, rule: sobol}``)."""

_SAMPLING: TypeAdapter[Any] = TypeAdapter(SamplingAlgorithm)


def parse_sampling_algorithm(data: Any) -> RandomSamplingAlgorithm | GridSamplingAlgorithm | BayesianSamplingAlgorithm:
    try:
        return _SAMPLING.validate_python(data)
    except ValidationError as exc:
        raise _raise_from(exc, data, "sampling_algorithm") from None


# --- early termination -----------------------------------------------------------------------


class EarlyTerminationPolicy(ShoalModel):
    """Applied at every multiple of ``evaluation_interval`` (0 means 1, the SDK's default) that is
    at least ``delay_evaluation``, counted in reports of the primary metric."""

    type: str
    evaluation_interval: Integer = Field(1, ge=0)
    delay_evaluation: Integer = Field(0, ge=0)

    @property
    def interval(self) -> int:
        return max(1, self.evaluation_interval)


class BanditPolicy(EarlyTerminationPolicy):
    """Cancel a trial that falls outside the slack of the best trial (``slack_factor`` is a ratio,
    ``slack_amount`` an absolute distance; exactly one of them)."""

    type: Literal["bandit"] = "bandit"
    slack_factor: Number | None = Field(None, ge=0)
    slack_amount: Number | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_slack(self) -> Self:
        if (self.slack_factor is None) == (self.slack_amount is None):
            given = "both were given" if self.slack_factor is not None else "neither was given"
            raise FieldIssue(
                "slack_factor", f"a bandit policy needs exactly one of slack_factor or slack_amount; {given}"
            )
        return self


class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Cancel a trial whose best value is worse than the median of the other trials' running averages."""

    type: Literal["median_stopping"] = "median_stopping"


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """Cancel the lowest ``truncation_percentage`` % of the trials at each evaluation interval."""

    type: Literal["truncation_selection"] = "truncation_selection"
    truncation_percentage: Integer = Field(ge=1, le=99)


POLICY_TYPES: dict[str, type[EarlyTerminationPolicy]] = {
    "bandit": BanditPolicy,
    "median_stopping": MedianStoppingPolicy,
    "truncation_selection": TruncationSelectionPolicy,
}


def _policy(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    type_name = _lower(data.get("type"))
    allowed = ", ".join(POLICY_TYPES)
    if type_name is None:
        raise FieldIssue("type", f"an early termination policy needs a type; one of: {allowed}", missing=True)
    if type_name not in POLICY_TYPES:
        raise FieldIssue("type", f"unknown early termination policy {type_name!r}; allowed: {allowed}")
    data["type"] = type_name
    return data


def _policy_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in POLICY_TYPES else None


Policy = Annotated[
    Annotated[BanditPolicy, Tag("bandit")]
    | Annotated[MedianStoppingPolicy, Tag("median_stopping")]
    | Annotated[TruncationSelectionPolicy, Tag("truncation_selection")],
    Discriminator(_policy_kind),
    BeforeValidator(_policy),
]
"""``early_termination:``."""

_POLICY: TypeAdapter[Any] = TypeAdapter(Policy)


def parse_early_termination(data: Any) -> BanditPolicy | MedianStoppingPolicy | TruncationSelectionPolicy | None:
    if data is None:
        return None
    try:
        return _POLICY.validate_python(data)
    except ValidationError as exc:
        raise _raise_from(exc, data, "early_termination") from None


# --- objective and limits --------------------------------------------------------------------


class Objective(ShoalModel):
    """``objective: {goal, primary_metric}``; the goal is case-insensitive (the SDK's ``"Maximize"``)."""

    goal: Literal["maximize", "minimize"]
    primary_metric: str = Field(min_length=1)

    @field_validator("goal", mode="before")
    @classmethod
    def _lower_goal(cls, value: Any) -> Any:
        return _lower(value)


DEFAULT_MAX_TOTAL_TRIALS = 1000
DEFAULT_TIMEOUT = 5_184_000  # 60 days, Azure's documented default


class SweepJobLimits(ShoalModel):
    """``limits:``; unset fields keep their Azure defaults through the ``effective_*`` properties."""

    max_total_trials: Integer | None = Field(None, ge=1, le=1000)
    max_concurrent_trials: Integer | None = Field(None, ge=1, le=1000)
    timeout: Integer | None = Field(None, gt=0, description="seconds, the whole sweep")
    trial_timeout: Integer | None = Field(None, gt=0, description="seconds, each trial")

    @property
    def effective_max_total_trials(self) -> int:
        return self.max_total_trials or DEFAULT_MAX_TOTAL_TRIALS

    @property
    def effective_max_concurrent_trials(self) -> int:
        return self.max_concurrent_trials or self.effective_max_total_trials

    @property
    def effective_timeout(self) -> int:
        return self.timeout or DEFAULT_TIMEOUT


# --- Azure's rules across the parts ----------------------------------------------------------

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


__all__ = [
    "BanditPolicy",
    "BayesianSamplingAlgorithm",
    "Choice",
    "Distribution",
    "EarlyTerminationPolicy",
    "GridSamplingAlgorithm",
    "LogNormal",
    "LogUniform",
    "MedianStoppingPolicy",
    "Normal",
    "Objective",
    "Policy",
    "QLogNormal",
    "QLogUniform",
    "QNormal",
    "QUniform",
    "RandomSamplingAlgorithm",
    "Randint",
    "SamplingAlgorithm",
    "SweepDistribution",
    "SweepJobLimits",
    "TruncationSelectionPolicy",
    "Uniform",
    "check_sweep_rules",
    "iter_expressions",
    "parse_early_termination",
    "parse_sampling_algorithm",
    "parse_search_space",
    "sweep_rule_issues",
]
