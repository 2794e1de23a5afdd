"""Trial parameters (random, sobol, grid, bayesian) and early termination decisions
(``shoal.services.jobs.sweep_sampling``, ``…jobs.early_termination``), all pure functions of the sweep's records."""

from __future__ import annotations

import math
import statistics

import pytest

from shoal.entities.sweep import parse_search_space
from shoal.services.jobs.early_termination import primary_value, should_terminate
from shoal.services.jobs.sweep_sampling import Trial, flatten_params, grid_size, next_params

N = 1500  # samples per distribution check


def _draws(space: dict, algorithm="random", n: int = N, seed: int = 11) -> list[dict]:
    parsed = parse_search_space(space)
    return [next_params(parsed, algorithm, sweep_seed=seed, history=[], goal="maximize", index=i) for i in range(n)]


def _is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


# --- every distribution's support ------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["random", {"type": "random", "rule": "sobol", "seed": 4}])
def test_values_respect_each_distribution(algorithm) -> None:
    space = {
        "batch": {"type": "choice", "values": [16, 32, "auto"]},
        "layers": {"type": "randint", "upper": 4},
        "dropout": {"type": "uniform", "min_value": 0.1, "max_value": 0.5},
        "lr": {"type": "loguniform", "min_value": -6, "max_value": -1},
        "units": {"type": "quniform", "min_value": 8, "max_value": 128, "q": 8},
        "decay": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2},
        "momentum": {"type": "normal", "mu": 0.9, "sigma": 0.02},
        "scale": {"type": "lognormal", "mu": 1, "sigma": 0.5},
        "offset": {"type": "qnormal", "mu": 10, "sigma": 3, "q": 0.5},
        "width": {"type": "qlognormal", "mu": 2, "sigma": 0.5, "q": 3},
    }
    draws = _draws(space, algorithm)
    column = {name: [d[name] for d in draws] for name in space}

    assert set(column["batch"]) == {16, 32, "auto"}
    assert set(column["layers"]) == {0, 1, 2, 3} and all(type(v) is int for v in column["layers"])
    assert all(0.1 <= v <= 0.5 for v in column["dropout"])
    assert all(math.exp(-6) <= v <= math.exp(-1) for v in column["lr"])
    assert statistics.fmean(math.log(v) for v in column["lr"]) == pytest.approx(-3.5, abs=0.15)  # log-uniform
    assert all(type(v) is int and v % 8 == 0 and 8 <= v <= 128 for v in column["units"])
    assert set(column["units"]) == set(range(8, 129, 8))
    assert all(type(v) is int and v % 2 == 0 and 0 <= v <= round(math.exp(3) / 2) * 2 for v in column["decay"])
    assert statistics.fmean(column["momentum"]) == pytest.approx(0.9, abs=0.003)
    assert statistics.stdev(column["momentum"]) == pytest.approx(0.02, rel=0.1)
    assert all(v > 0 for v in column["scale"])
    assert statistics.fmean(math.log(v) for v in column["scale"]) == pytest.approx(1, abs=0.05)
    assert all(type(v) is float and _is_multiple(v, 0.5) for v in column["offset"])
    assert statistics.fmean(column["offset"]) == pytest.approx(10, abs=0.3)
    assert all(type(v) is int and v % 3 == 0 and v >= 0 for v in column["width"])


def test_float_q_gives_clean_multiples() -> None:
    values = [d["x"] for d in _draws({"x": {"type": "quniform", "min_value": 0, "max_value": 2, "q": 0.1}}, n=300)]
    assert all(v == round(round(v / 0.1) * 0.1, 10) for v in values)  # 0.3, never 0.30000000000000004
    assert all(-1e-12 <= v <= 2 + 1e-12 for v in values)


def test_logbase_changes_the_log_distributions() -> None:
    algorithm = {"type": "random", "logbase": 10}
    values = [d["x"] for d in _draws({"x": {"type": "loguniform", "min_value": -3, "max_value": 0}}, algorithm, n=500)]
    assert all(1e-3 <= v <= 1 for v in values) and min(values) < 0.01


# --- nested choice ---------------------------------------------------------------------------

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
    },
    "lr": {"type": "uniform", "min_value": 0, "max_value": 1},
}


@pytest.mark.parametrize("algorithm", ["random", {"type": "random", "rule": "sobol"}])
def test_nested_choice_samples_the_chosen_sub_space(algorithm) -> None:
    seen = set()
    for params in _draws(NESTED, algorithm, n=400):
        model = params["model"]
        assert 0 <= params["lr"] <= 1
        if model == "baseline":
            seen.add("baseline")
        elif model["kernel"] == "rbf":
            assert set(model) == {"kernel", "gamma", "shrink"} and model["shrink"] is True
            assert math.exp(-3) <= model["gamma"] <= 1
            seen.add("rbf")
        else:
            assert set(model) == {"kernel", "degree"}
            degree = model["degree"]
            if isinstance(degree, dict):
                assert set(degree) == {"coef"} and 0 <= degree["coef"] <= 1
                seen.add("poly-coef")
            else:
                seen.add(f"poly-{degree}")
    assert seen == {"baseline", "rbf", "poly-2", "poly-3", "poly-coef"}


def test_flatten_params_spells_nested_values_with_dots() -> None:
    params = {"lr": 0.1, "model": {"kernel": "poly", "degree": {"coef": 0.5}}}
    assert flatten_params(params) == {"lr": 0.1, "model.kernel": "poly", "model.degree.coef": 0.5}


# --- random and sobol ------------------------------------------------------------------------


def test_random_is_reproducible_from_seed_and_index_alone() -> None:
    space = parse_search_space(NESTED)
    first = [next_params(space, "random", sweep_seed=5, history=[], goal="maximize", index=i) for i in range(20)]
    history = [Trial(p, 1.0) for p in first]
    again = [next_params(space, "random", sweep_seed=5, history=history, goal="minimize", index=i) for i in range(20)]
    assert again == first
    assert len({repr(p) for p in first}) == 20
    other = [next_params(space, "random", sweep_seed=6, history=[], goal="maximize", index=i) for i in range(20)]
    assert other != first
    # the algorithm's own seed wins over the sweep's
    seeded = {"type": "random", "seed": 42}
    a = next_params(space, seeded, sweep_seed=1, history=[], goal="maximize", index=3)
    b = next_params(space, seeded, sweep_seed=2, history=[], goal="maximize", index=3)
    assert a == b


def test_the_parameter_order_of_the_space_does_not_matter() -> None:
    forward = {"a": {"type": "uniform", "min_value": 0, "max_value": 1}, "b": {"type": "randint", "upper": 9}}
    backward = dict(reversed(list(forward.items())))
    for algorithm in ("random", {"type": "random", "rule": "sobol"}):
        assert _draws(forward, algorithm, n=10) == _draws(backward, algorithm, n=10)


def test_sobol_is_reproducible_and_fills_the_space_evenly() -> None:
    algorithm = {"type": "random", "rule": "sobol", "seed": 9}
    space = {
        "x": {"type": "uniform", "min_value": 0, "max_value": 1},
        "y": {"type": "uniform", "min_value": 0, "max_value": 1},
    }
    points = [(d["x"], d["y"]) for d in _draws(space, algorithm, n=64)]
    assert points == [(d["x"], d["y"]) for d in _draws(space, algorithm, n=64)]
    # The first 2^6 points of a (scrambled) Sobol sequence put exactly one point in each cell of
    # an 8x8 grid and in each of 64 slices of either axis; independent draws almost never do.
    assert sorted((int(x * 8), int(y * 8)) for x, y in points) == [(i, j) for i in range(8) for j in range(8)]
    assert sorted(int(x * 64) for x, _ in points) == list(range(64))
    randoms = [(d["x"], d["y"]) for d in _draws(space, "random", n=64)]
    assert len({(int(x * 8), int(y * 8)) for x, y in randoms}) < 64
    assert points != [(d["x"], d["y"]) for d in _draws(space, {**algorithm, "seed": 10}, n=64)]


# --- grid ------------------------------------------------------------------------------------

GRID = {
    "lr": {"type": "choice", "values": [0.1, 0.01]},
    "batch": {"type": "choice", "values": [16, 32, 16, 64]},  # a repeated value is one grid point
    "opt": {"type": "choice", "values": ["adam", "sgd"]},
}


def _grid(space: dict) -> list[dict]:
    out = []
    for i in range(100):
        params = next_params(space, "grid", sweep_seed=0, history=[], goal="maximize", index=i)
        if params is None:
            break
        out.append(params)
    return out


def test_grid_tries_every_combination_once_in_a_stable_order() -> None:
    points = _grid(GRID)
    assert len(points) == grid_size(GRID) == 2 * 3 * 2
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)
    assert {(p["lr"], p["batch"], p["opt"]) for p in points} == {
        (lr, b, o) for lr in (0.1, 0.01) for b in (16, 32, 64) for o in ("adam", "sgd")
    }
    # names in sorted order, the last one varying fastest: batch, lr, opt
    assert points[:4] == [
        {"batch": 16, "lr": 0.1, "opt": "adam"},
        {"batch": 16, "lr": 0.1, "opt": "sgd"},
        {"batch": 16, "lr": 0.01, "opt": "adam"},
        {"batch": 16, "lr": 0.01, "opt": "sgd"},
    ]
    assert points[-1] == {"batch": 64, "lr": 0.01, "opt": "sgd"}
    assert _grid(dict(reversed(list(GRID.items())))) == points  # stored key order does not matter
    assert _grid(GRID) == points  # a restarted server recomputes the same sequence
    assert next_params(GRID, "grid", sweep_seed=0, history=[], goal="maximize", index=12) is None
    assert next_params(GRID, "grid", sweep_seed=0, history=[], goal="maximize", index=-1) is None


def test_grid_keeps_values_that_only_look_alike() -> None:
    space = {"v": {"type": "choice", "values": [1, 1.0, True, "1"]}}
    assert [p["v"] for p in _grid(space)] == [1, 1.0, True, "1"]


def test_grid_refuses_a_space_it_cannot_enumerate() -> None:
    with pytest.raises(ValueError, match="grid"):
        next_params(
            {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "grid",
            sweep_seed=0,
            history=[],
            goal="maximize",
            index=0,
        )


# --- bayesian --------------------------------------------------------------------------------


def _optimize(algorithm, seed: int, trials: int = 30) -> float:
    space = parse_search_space({"x": {"type": "uniform", "min_value": -5, "max_value": 5}})
    history: list[Trial] = []
    for i in range(trials):
        params = next_params(space, algorithm, sweep_seed=seed, history=history, goal="minimize", index=i)
        history.append(Trial(params, (params["x"] - 1.3) ** 2))
    return min(t.value for t in history)


def test_bayesian_beats_random_on_a_quadratic() -> None:
    seeds = range(8)
    bayesian = [_optimize("bayesian", s) for s in seeds]
    randoms = [_optimize("random", s) for s in seeds]
    assert statistics.fmean(bayesian) < 0.5 * statistics.fmean(randoms), (bayesian, randoms)
    assert statistics.median(bayesian) < statistics.median(randoms)


def test_bayesian_is_deterministic_given_the_history() -> None:
    space = {
        "x": {"type": "uniform", "min_value": 0, "max_value": 1},
        "n": {"type": "quniform", "min_value": 0, "max_value": 20, "q": 5},
        "c": {"type": "choice", "values": ["a", "b"]},
    }
    history = [
        Trial({"x": 0.2, "n": 5, "c": "a"}, 0.3),
        Trial({"x": 0.7, "n": 15, "c": "b"}, 0.9),
        Trial({"x": 0.5, "n": 10, "c": "a"}, None),  # failed
        Trial({"x": 0.9, "n": 20, "c": "b"}, None, running=True),
        Trial({"x": 7.0, "n": 3, "c": "z"}, 1.0),  # not a point of this space: ignored
    ] + [Trial({"x": i / 20, "n": 5 * (i % 5), "c": "ab"[i % 2]}, i / 20) for i in range(12)]
    first = next_params(space, "bayesian", sweep_seed=3, history=history, goal="maximize", index=17)
    assert first == next_params(space, "bayesian", sweep_seed=3, history=list(history), goal="maximize", index=17)
    assert 0 <= first["x"] <= 1 and first["n"] in (0, 5, 10, 15, 20) and first["c"] in ("a", "b")
    later = next_params(space, "bayesian", sweep_seed=3, history=history, goal="maximize", index=18)
    assert later != first


def test_bayesian_handles_nested_choices() -> None:
    space = {
        "m": {
            "type": "choice",
            "values": ["plain", {"k": "q", "w": {"type": "quniform", "min_value": 0, "max_value": 4, "q": 1}}],
        },
        "x": {"type": "uniform", "min_value": 0, "max_value": 1},
    }
    history: list[Trial] = []
    for i in range(15):
        params = next_params(space, "bayesian", sweep_seed=1, history=history, goal="minimize", index=i)
        assert params["m"] == "plain" or (params["m"]["k"] == "q" and params["m"]["w"] in range(5))
        history.append(Trial(params, params["x"] + (0 if params["m"] == "plain" else params["m"]["w"])))
    assert {"plain" if t.params["m"] == "plain" else "q" for t in history} == {"plain", "q"}


def test_bayesian_over_a_finite_space_never_repeats_and_ends() -> None:
    space = {
        "a": {"type": "choice", "values": [1, 2, 3]},
        "b": {"type": "quniform", "min_value": 0, "max_value": 2, "q": 1},
    }
    history: list[Trial] = []
    for i in range(12):
        params = next_params(space, "bayesian", sweep_seed=2, history=history, goal="minimize", index=i)
        if params is None:
            break
        history.append(Trial(params, params["a"] * params["b"]))
    assert len(history) == 9
    assert len({(t.params["a"], t.params["b"]) for t in history}) == 9


# --- primary value ---------------------------------------------------------------------------


def test_primary_value_last_and_best() -> None:
    points = [(2, 0.5), (0, 0.1), (1, 0.9), (3, float("nan"))]
    assert primary_value(points, "maximize") == 0.5  # by step; NaN is not a report
    assert primary_value(points, "maximize", "best") == 0.9
    assert primary_value(points, "minimize", "best") == 0.1
    assert primary_value([], "maximize") is None
    with pytest.raises(ValueError):
        primary_value(points, "maximize", "mean")


# --- early termination -----------------------------------------------------------------------


def _h(*values: float) -> list[tuple[int, float]]:
    return list(enumerate(values))


def test_bandit_slack_factor_as_in_azures_example() -> None:
    # Azure's docs: the best trial has 0.8 at interval 10, slack_factor 0.2 → cancel below 0.8/1.2.
    policy = {"type": "bandit", "slack_factor": 0.2, "evaluation_interval": 1}
    histories = {"best": _h(*[0.8] * 10), "low": _h(*[0.65] * 10), "near": _h(*[0.7] * 10)}
    stop, reason = should_terminate(policy, "maximize", trial="low", histories=histories)
    assert stop and reason.startswith("bandit: 0.65 at interval 10 is below 0.8/(1+0.2)=0.666667")
    assert "best" in reason
    assert should_terminate(policy, "maximize", trial="near", histories=histories) == (False, "")
    assert should_terminate(policy, "maximize", trial="best", histories=histories) == (False, "")


def test_bandit_uses_each_trials_best_so_far_at_the_interval() -> None:
    policy = {"type": "bandit", "slack_amount": 0.1}
    histories = {"a": _h(0.5, 0.9, 0.2), "b": _h(0.3, 0.85, 0.86)}
    assert should_terminate(policy, "maximize", trial="a", histories=histories)[0] is False  # its best is 0.9
    histories = {"a": _h(0.5, 0.6, 0.55), "b": _h(0.3, 0.85, 0.86)}
    stop, reason = should_terminate(policy, "maximize", trial="a", histories=histories)
    assert stop and "0.6 at interval 3 is below 0.86-0.1=0.76" in reason


def test_bandit_minimize_with_factor_and_amount() -> None:
    histories = {"best": _h(1.0, 0.5), "worse": _h(0.9, 0.7)}
    stop, reason = should_terminate(
        {"type": "bandit", "slack_factor": 0.2}, "minimize", trial="worse", histories=histories
    )
    assert stop and "0.7 at interval 2 is above 0.5*(1+0.2)=0.6" in reason
    assert not should_terminate(
        {"type": "bandit", "slack_factor": 0.5}, "minimize", trial="worse", histories=histories
    )[0]
    stop, reason = should_terminate(
        {"type": "bandit", "slack_amount": 0.1}, "minimize", trial="worse", histories=histories
    )
    assert stop and "above 0.5+0.1=0.6" in reason


def test_bandit_with_negative_values_still_allows_the_slack() -> None:
    # maximize with best -1.0 and slack_factor 0.1: the cut-off is -1.0 - 0.1/1.1 ≈ -1.0909
    histories = {"best": _h(-1.0), "close": _h(-1.05), "far": _h(-1.2)}
    policy = {"type": "bandit", "slack_factor": 0.1}
    assert not should_terminate(policy, "maximize", trial="close", histories=histories)[0]
    stop, reason = should_terminate(policy, "maximize", trial="far", histories=histories)
    assert stop and "=-1.09091" in reason


def test_delay_evaluation_and_evaluation_interval() -> None:
    histories = {"best": _h(*[1.0] * 8), "bad": _h(0.1, 0.1, 0.1, 0.1)}
    delayed = {"type": "bandit", "slack_amount": 0.1, "delay_evaluation": 5}
    assert should_terminate(delayed, "maximize", trial="bad", histories=histories) == (False, "")
    histories["bad"] = _h(*[0.1] * 5)
    stop, reason = should_terminate(delayed, "maximize", trial="bad", histories=histories)
    assert stop and "interval 5" in reason  # Azure: every multiple of the interval that is >= the delay

    every_third = {"type": "bandit", "slack_amount": 0.1, "evaluation_interval": 3}
    histories = {"best": _h(1.0, 1.0, 1.0, 1.0), "bad": _h(0.1, 0.1)}
    assert should_terminate(every_third, "maximize", trial="bad", histories=histories) == (False, "")
    histories["bad"] = _h(0.1, 0.1, 0.1, 0.1, 0.1)  # judged at interval 3, its latest multiple of 3
    stop, reason = should_terminate(every_third, "maximize", trial="bad", histories=histories)
    assert stop and "interval 3" in reason
    # interval 3 and delay 4: the first evaluation is at 6
    late = {**every_third, "delay_evaluation": 4}
    histories = {"best": _h(*[1.0] * 6), "bad": _h(*[0.1] * 5)}
    assert not should_terminate(late, "maximize", trial="bad", histories=histories)[0]
    histories["bad"] = _h(*[0.1] * 6)
    assert should_terminate(late, "maximize", trial="bad", histories=histories)[0]


def test_trials_that_have_not_reached_the_interval_are_left_out() -> None:
    histories = {"a": _h(0.5, 0.5, 0.5), "b": _h(0.9)}  # b is better but only reported once
    assert should_terminate({"type": "bandit", "slack_amount": 0.1}, "maximize", trial="a", histories=histories) == (
        False,
        "",
    )


def test_median_stopping() -> None:
    policy = {"type": "median_stopping", "delay_evaluation": 2}
    histories = {
        "t1": _h(0.6, 0.8, 0.9),  # running average at 3: 0.7667
        "t2": _h(0.5, 0.7, 0.7),  # 0.6333
        "t3": _h(0.4, 0.5, 0.6),  # 0.5
        "me": _h(0.2, 0.5, 0.55),
    }
    stop, reason = should_terminate(policy, "maximize", trial="me", histories=histories)
    assert stop and reason == (
        "median_stopping: best 0.55 at interval 3 is below the median 0.633333 of 3 other trials' running averages"
    )
    histories["me"] = _h(0.2, 0.5, 0.64)
    assert should_terminate(policy, "maximize", trial="me", histories=histories) == (False, "")
    assert should_terminate(policy, "maximize", trial="me", histories={"me": _h(0.1, 0.1, 0.1)}) == (False, "")
    # minimize: losses
    losses = {"a": _h(1.0, 0.8), "b": _h(1.2, 1.0), "me": _h(1.5, 1.3)}
    stop, reason = should_terminate({"type": "median_stopping"}, "minimize", trial="me", histories=losses)
    assert stop and "is above the median 1" in reason


def test_truncation_selection() -> None:
    policy = {"type": "truncation_selection", "truncation_percentage": 20}
    histories = {f"t{i}": _h(0.1 * i, 0.1 * i) for i in range(1, 6)}  # 5 trials: the lowest 20% is one
    stop, reason = should_terminate(policy, "maximize", trial="t1", histories=histories)
    assert stop and reason == "truncation_selection: 0.1 at interval 2 is in the lowest 20% of 5 trials (cut-off 0.2)"
    assert should_terminate(policy, "maximize", trial="t2", histories=histories) == (False, "")
    assert should_terminate(policy, "minimize", trial="t5", histories=histories)[0]
    assert not should_terminate(policy, "minimize", trial="t1", histories=histories)[0]
    # four trials: 20% of them is less than one, so none is cut
    del histories["t5"]
    assert not should_terminate(policy, "maximize", trial="t1", histories=histories)[0]
    # a tie at the cut-off survives
    tied = {"a": _h(0.1), "b": _h(0.1), "c": _h(0.5), "d": _h(0.6), "e": _h(0.7)}
    assert not should_terminate(policy, "maximize", trial="a", histories=tied)[0]
    # judged by the value at the interval, not the best so far
    dropped = {"me": _h(0.9, 0.05), **{f"o{i}": _h(0.5, 0.5) for i in range(4)}}
    assert should_terminate(policy, "maximize", trial="me", histories=dropped)[0]


def test_no_policy_or_unknown_trial_never_terminates() -> None:
    histories = {"a": _h(0.1), "b": _h(0.9)}
    assert should_terminate(None, "maximize", trial="a", histories=histories) == (False, "")
    assert should_terminate({"type": "bandit", "slack_amount": 0}, "maximize", trial="zz", histories=histories) == (
        False,
        "",
    )
    assert should_terminate({"type": "bandit", "slack_amount": 0}, "Maximize", trial="a", histories={"a": []}) == (
        False,
        "",
    )
