"""Sweep job parts: the ten search space expressions, sampling algorithms, policies, objective,
limits, and Azure's rules on how they combine (``shoal.entities.sweep``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import shoal
from shoal.entities.sweep import (
    BanditPolicy,
    BayesianSamplingAlgorithm,
    Choice,
    GridSamplingAlgorithm,
    LogNormal,
    LogUniform,
    MedianStoppingPolicy,
    Normal,
    Objective,
    QLogNormal,
    QLogUniform,
    QNormal,
    QUniform,
    Randint,
    RandomSamplingAlgorithm,
    SweepJobLimits,
    TruncationSelectionPolicy,
    Uniform,
    check_sweep_rules,
    iter_expressions,
    parse_early_termination,
    parse_sampling_algorithm,
    parse_search_space,
    sweep_rule_issues,
)
from shoal.errors import SpecError

YAML_SPACE = {
    "batch": {"type": "choice", "values": [16, 32, 64]},
    "layers": {"type": "randint", "upper": 5},
    "dropout": {"type": "uniform", "min_value": 0.1, "max_value": 0.5},
    "lr": {"type": "loguniform", "min_value": -6, "max_value": -1},
    "units": {"type": "quniform", "min_value": 8, "max_value": 128, "q": 8},
    "decay": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 1},
    "momentum": {"type": "normal", "mu": 0.9, "sigma": 0.02},
    "scale": {"type": "lognormal", "mu": 0, "sigma": 1},
    "offset": {"type": "qnormal", "mu": 10, "sigma": 3, "q": 0.5},
    "width": {"type": "qlognormal", "mu": 2, "sigma": 0.5, "q": 2},
}

SDK_SPACE = {
    "batch": Choice(values=[16, 32, 64]),
    "layers": Randint(upper=5),
    "dropout": Uniform(min_value=0.1, max_value=0.5),
    "lr": LogUniform(min_value=-6, max_value=-1),
    "units": QUniform(min_value=8, max_value=128, q=8),
    "decay": QLogUniform(min_value=0, max_value=3, q=1),
    "momentum": Normal(mu=0.9, sigma=0.02),
    "scale": LogNormal(mu=0, sigma=1),
    "offset": QNormal(mu=10, sigma=3, q=0.5),
    "width": QLogNormal(mu=2, sigma=0.5, q=2),
}

NESTED = {
    "model": {
        "type": "choice",
        "values": [
            "baseline",
            {"kernel": "rbf", "gamma": {"type": "loguniform", "min_value": -3, "max_value": 0}, "shrink": True},
            {
                "kernel": "poly",
                "degree": {
                    "type": "choice",
                    "values": [2, 3, {"coef": {"type": "uniform", "min_value": 0, "max_value": 1}}],
                },
            },
        ],
    }
}


def _error(data: dict, parse=parse_search_space) -> str:
    with pytest.raises(SpecError) as info:
        parse(data)
    return str(info.value)


# --- search space ----------------------------------------------------------------------------


def test_every_expression_parses_to_its_sdk_class_and_round_trips() -> None:
    space = parse_search_space(YAML_SPACE)
    assert space == SDK_SPACE
    assert {name: d.to_dict() for name, d in space.items()} == YAML_SPACE
    assert parse_search_space({n: d.to_dict() for n, d in SDK_SPACE.items()}) == SDK_SPACE


def test_sdk_classes_take_azures_positional_arguments() -> None:
    assert Uniform(0.1, 0.5) == Uniform(min_value=0.1, max_value=0.5)
    assert Randint(10).upper == 10
    assert Choice([1, 2]).values == [1, 2]
    assert Choice(values=range(1, 4)).values == [1, 2, 3]  # the SDK accepts a range
    assert QUniform(0, 10, 2).q == 2 and QLogNormal(0, 1, 3).q == 3
    with pytest.raises(TypeError):
        Uniform(0, 1, 2)
    with pytest.raises(TypeError):
        Uniform(0, min_value=1)


def test_sdk_constructor_errors_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="max_value"):
        Uniform(1, 0)
    with pytest.raises(SpecError, match="upper"):
        Randint(0)


def test_sdk_instances_are_accepted_by_the_parser() -> None:
    space = parse_search_space({"lr": Uniform(0, 1), "m": Choice([{"a": Normal(0, 1)}, "b"])})
    assert space["m"].values[0]["a"] == Normal(0, 1)


def test_types_are_case_insensitive() -> None:
    assert (
        parse_search_space({"x": {"type": "QUniform", "min_value": 0, "max_value": 4, "q": 1}})["x"].type == "quniform"
    )


def test_integers_stay_integers_and_floats_floats() -> None:
    dist = parse_search_space({"x": {"type": "uniform", "min_value": 1, "max_value": 2.5}})["x"]
    assert type(dist.min_value) is int and type(dist.max_value) is float
    assert parse_search_space({"x": {"type": "randint", "upper": 10.0}})["x"].upper == 10  # JSON's 10.0


def test_nested_choice_parses_and_round_trips() -> None:
    space = parse_search_space(NESTED)
    model = space["model"]
    assert model.nested and model.values[0] == "baseline"
    assert model.values[1]["gamma"] == LogUniform(-3, 0) and model.values[1]["shrink"] is True
    inner = model.values[2]["degree"]
    assert isinstance(inner, Choice) and inner.values[2]["coef"] == Uniform(0, 1)
    assert {n: d.to_dict() for n, d in space.items()} == NESTED
    paths = [p for p, _ in iter_expressions(space)]
    assert paths == [
        "search_space.model",
        "search_space.model.values[1].gamma",
        "search_space.model.values[2].degree",
        "search_space.model.values[2].degree.values[2].coef",
    ]


@pytest.mark.parametrize(
    ("space", "fragments"),
    [
        ({"lr": {"type": "uniform", "min_value": 1, "max_value": 0}}, ["search_space.lr.max_value", "greater than"]),
        ({"lr": {"type": "loguniform", "min_value": 2, "max_value": 2}}, ["search_space.lr.max_value"]),
        ({"lr": {"type": "gaussian"}}, ["search_space.lr.type", "unknown search space type 'gaussian'"]),
        ({"lr": {"min_value": 0, "max_value": 1}}, ["search_space.lr.type", "needs a type"]),
        ({"b": {"type": "choice", "values": []}}, ["search_space.b.values", "at least one value"]),
        ({"b": {"type": "choice"}}, ["search_space.b.values"]),
        ({"q": {"type": "quniform", "min_value": 0, "max_value": 1, "q": 0}}, ["search_space.q.q", "greater than 0"]),
        ({"q": {"type": "qnormal", "mu": 0, "sigma": 1, "q": -1}}, ["search_space.q.q"]),
        ({"n": {"type": "normal", "mu": 0, "sigma": 0}}, ["search_space.n.sigma"]),
        ({"n": {"type": "lognormal", "mu": 0}}, ["search_space.n.sigma", "missing"]),
        ({"r": {"type": "randint", "upper": 0}}, ["search_space.r.upper"]),
        ({"r": {"type": "randint", "upper": 2.5}}, ["search_space.r.upper", "integer"]),
        ({"r": {"type": "randint", "upper": True}}, ["search_space.r.upper"]),
        ({"u": {"type": "uniform", "min_value": "0", "max_value": 1}}, ["search_space.u.min_value", "number"]),
        ({"u": {"type": "uniform", "min_value": float("nan"), "max_value": 1}}, ["search_space.u.min_value"]),
        ({"u": {"type": "uniform", "min_value": 0, "max_value": 1, "step": 1}}, ["search_space.u.step", "unknown"]),
        ({"u": 0.5}, ["search_space.u", "mapping with a 'type'"]),
        ({"b": {"type": "choice", "values": [[1, 2]]}}, ["search_space.b.values[0]"]),
        ({"b": {"type": "choice", "values": [None]}}, ["search_space.b.values[0]"]),
        ({"b": {"type": "choice", "values": [{}]}}, ["search_space.b.values[0]", "cannot be empty"]),
        (
            {"m": {"type": "choice", "values": [{"c": {"type": "uniform", "min_value": 3, "max_value": 1}}]}},
            ["search_space.m.values[0].c.max_value"],
        ),
        ({"m": {"type": "choice", "values": [{"c": [1]}]}}, ["search_space.m.values[0].c"]),
        ({"m": {"type": "choice", "values": [{"c": {"type": "nope"}}]}}, ["search_space.m.values[0].c.type"]),
    ],
)
def test_invalid_search_spaces_name_the_field(space: dict, fragments: list[str]) -> None:
    message = _error(space)
    for fragment in fragments:
        assert fragment in message, message


def test_an_empty_or_non_mapping_search_space_is_rejected() -> None:
    assert "search_space" in _error({})
    assert "search_space" in _error(["lr"])  # type: ignore[arg-type]


def test_all_problems_are_listed() -> None:
    message = _error({"a": {"type": "uniform", "min_value": 1, "max_value": 0}, "b": {"type": "choice", "values": []}})
    assert "2 problems" in message and "search_space.a.max_value" in message and "search_space.b.values" in message


# --- sampling algorithms ---------------------------------------------------------------------


def test_sampling_algorithm_string_and_mapping_forms() -> None:
    assert parse_sampling_algorithm("random") == RandomSamplingAlgorithm()
    assert parse_sampling_algorithm("Grid") == GridSamplingAlgorithm()
    assert parse_sampling_algorithm("bayesian") == BayesianSamplingAlgorithm()
    assert parse_sampling_algorithm({"type": "bayesian"}) == BayesianSamplingAlgorithm()
    algo = parse_sampling_algorithm({"type": "random", "seed": 7, "rule": "Sobol", "logbase": "e"})
    assert (algo.seed, algo.rule, algo.base) == (7, "sobol", pytest.approx(2.718281828))
    assert parse_sampling_algorithm({"type": "random", "logbase": 10}).base == 10
    assert parse_sampling_algorithm(RandomSamplingAlgorithm(seed=1, rule="random")).seed == 1
    assert algo.model_dump(exclude_none=True) == {"type": "random", "seed": 7, "rule": "sobol", "logbase": "e"}


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ("annealing", ["sampling_algorithm.type", "unknown sampling algorithm 'annealing'"]),
        ({"seed": 1}, ["sampling_algorithm.type", "needs a type"]),
        (
            {"type": "grid", "rule": "sobol"},
            ["sampling_algorithm.rule", "the sobol rule applies only to random sampling"],
        ),
        (
            {"type": "bayesian", "rule": "sobol"},
            ["sampling_algorithm.rule", "only to random sampling, not to bayesian"],
        ),
        ({"type": "bayesian", "seed": 3}, ["sampling_algorithm.seed", "only to random"]),
        ({"type": "grid", "logbase": 2}, ["sampling_algorithm.logbase"]),
        ({"type": "random", "rule": "halton"}, ["sampling_algorithm.rule"]),
        ({"type": "random", "seed": "x"}, ["sampling_algorithm.seed"]),
        ({"type": "random", "logbase": -2}, ["sampling_algorithm.logbase"]),
        ({"type": "random", "logbase": 1}, ["sampling_algorithm.logbase"]),
        ({"type": "random", "logbase": "ten"}, ["sampling_algorithm.logbase"]),
    ],
)
def test_invalid_sampling_algorithms(data, fragments: list[str]) -> None:
    message = _error(data, parse_sampling_algorithm)
    for fragment in fragments:
        assert fragment in message, message


# --- early termination -----------------------------------------------------------------------


def test_policies_parse_with_azures_defaults() -> None:
    bandit = parse_early_termination({"type": "bandit", "slack_factor": 0.1})
    assert bandit == BanditPolicy(slack_factor=0.1)
    assert (bandit.evaluation_interval, bandit.delay_evaluation, bandit.slack_amount) == (1, 0, None)
    assert parse_early_termination({"type": "Median_Stopping", "delay_evaluation": 5}) == MedianStoppingPolicy(
        delay_evaluation=5
    )
    trunc = parse_early_termination({"type": "truncation_selection", "truncation_percentage": 20})
    assert isinstance(trunc, TruncationSelectionPolicy) and trunc.truncation_percentage == 20
    assert parse_early_termination(None) is None
    assert BanditPolicy(slack_amount=0.2, evaluation_interval=0).interval == 1  # the SDK's 0 means every report
    assert bandit.model_dump(exclude_none=True) == {
        "type": "bandit",
        "slack_factor": 0.1,
        "evaluation_interval": 1,
        "delay_evaluation": 0,
    }


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"type": "bandit"}, ["early_termination.slack_factor", "exactly one", "neither"]),
        ({"type": "bandit", "slack_factor": 0.1, "slack_amount": 0.2}, ["exactly one", "both"]),
        ({"type": "bandit", "slack_factor": -0.1}, ["early_termination.slack_factor"]),
        ({"type": "bandit", "slack_amount": 1, "evaluation_interval": -1}, ["early_termination.evaluation_interval"]),
        ({"type": "median_stopping", "delay_evaluation": -2}, ["early_termination.delay_evaluation"]),
        ({"type": "truncation_selection"}, ["early_termination.truncation_percentage", "missing"]),
        ({"type": "truncation_selection", "truncation_percentage": 0}, ["early_termination.truncation_percentage"]),
        ({"type": "truncation_selection", "truncation_percentage": 100}, ["early_termination.truncation_percentage"]),
        ({"type": "hyperband"}, ["early_termination.type", "unknown early termination policy 'hyperband'"]),
        ({"type": "median_stopping", "slack_factor": 0.1}, ["early_termination.slack_factor", "unknown"]),
    ],
)
def test_invalid_policies(data: dict, fragments: list[str]) -> None:
    message = _error(data, parse_early_termination)
    for fragment in fragments:
        assert fragment in message, message


# --- objective and limits --------------------------------------------------------------------


def test_objective_goal_is_case_insensitive() -> None:
    assert Objective(goal="Maximize", primary_metric="accuracy").goal == "maximize"
    with pytest.raises(SpecError, match="goal"):
        Objective(goal="best", primary_metric="accuracy")
    with pytest.raises(SpecError, match="primary_metric"):
        Objective(goal="minimize", primary_metric="")


def test_limits_defaults_and_bounds() -> None:
    limits = SweepJobLimits()
    assert (limits.effective_max_total_trials, limits.effective_max_concurrent_trials, limits.effective_timeout) == (
        1000,
        1000,
        5_184_000,
    )
    limits = SweepJobLimits(max_total_trials=20, timeout=7200)
    assert limits.effective_max_concurrent_trials == 20
    for bad in ({"max_total_trials": 0}, {"max_total_trials": 1001}, {"max_concurrent_trials": 0}, {"timeout": 0}):
        with pytest.raises(SpecError, match=next(iter(bad))):
            SweepJobLimits(**bad)


# --- Azure's rules ---------------------------------------------------------------------------


def _rules(space: dict, algorithm, policy=None) -> str:
    with pytest.raises(SpecError) as info:
        check_sweep_rules(
            parse_search_space(space), parse_sampling_algorithm(algorithm), parse_early_termination(policy)
        )
    return str(info.value)


def test_grid_needs_every_parameter_to_be_a_plain_choice() -> None:
    message = _rules(YAML_SPACE, "grid")
    assert "search_space.dropout" in message and "grid sampling needs every parameter to be a choice" in message
    assert "'layers' is randint" in message and "search_space.batch" not in message
    assert "cannot enumerate a nested choice" in _rules(NESTED, "grid")
    check_sweep_rules(parse_search_space({"a": {"type": "choice", "values": [1, 2]}}), GridSamplingAlgorithm())


def test_bayesian_allows_only_choice_uniform_quniform_even_when_nested() -> None:
    message = _rules(YAML_SPACE, "bayesian")
    for name in ("layers", "lr", "decay", "momentum", "scale", "offset", "width"):
        assert f"search_space.{name}" in message, name
    for name in ("batch", "dropout", "units"):
        assert f"search_space.{name}'" not in message and f"'{name}' is" not in message
    assert "supports only choice, uniform, quniform" in message
    nested = _rules(NESTED, {"type": "bayesian"})
    assert "search_space.model.values[1].gamma" in nested and "loguniform" in nested
    ok = {"a": {"type": "choice", "values": [1, {"b": {"type": "quniform", "min_value": 0, "max_value": 4, "q": 1}}]}}
    check_sweep_rules(parse_search_space(ok), "bayesian")


def test_bayesian_takes_no_early_termination() -> None:
    message = _rules(
        {"x": {"type": "uniform", "min_value": 0, "max_value": 1}}, "bayesian", {"type": "bandit", "slack_amount": 1}
    )
    assert "early_termination" in message and "bayesian sampling does not support early termination" in message


def test_random_takes_everything() -> None:
    space = parse_search_space({**YAML_SPACE, **NESTED})
    policy = parse_early_termination({"type": "median_stopping"})
    assert sweep_rule_issues(space, parse_sampling_algorithm({"type": "random", "rule": "sobol"}), policy) == []


# --- the SDK surface and Azure's own examples ------------------------------------------------


def test_sdk_classes_are_exported_from_shoal() -> None:
    for name in ("Choice", "Uniform", "QLogNormal", "BanditPolicy", "TruncationSelectionPolicy", "Objective"):
        assert name in shoal.__all__
    assert shoal.Choice is Choice and shoal.SweepJobLimits is SweepJobLimits


def _example_sweeps() -> list:
    root = os.environ.get("SHOAL_AZUREML_EXAMPLES")
    if not root:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SHOAL_AZUREML_EXAMPLES is not set"))]
    jobs = Path(root) / "cli" / "jobs"
    files = sorted(p for p in jobs.rglob("*.y*ml") if "sweep" in p.name)
    return [pytest.param(p, id=p.relative_to(jobs).as_posix()) for p in files] or [
        pytest.param(None, marks=pytest.mark.skip(reason=f"no sweep YAML under {jobs}"))
    ]


@pytest.mark.parametrize("path", _example_sweeps())
def test_azureml_example_sweeps_parse_and_follow_the_rules(path: Path) -> None:
    from shoal.entities import load_yaml

    data, _ = load_yaml(path)
    if data.get("type") != "sweep":
        pytest.skip("not a sweep job")
    space = parse_search_space(data["search_space"])
    algorithm = parse_sampling_algorithm(data["sampling_algorithm"])
    policy = parse_early_termination(data.get("early_termination"))
    Objective(**data["objective"])
    SweepJobLimits(**(data.get("limits") or {}))
    check_sweep_rules(space, algorithm, policy)
