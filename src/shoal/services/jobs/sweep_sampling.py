"""Sweep trials' parameters, as pure functions of what the trials reported.

Nothing here keeps state: the sweep controller stores the trials and calls these with the whole
history each time, so a restarted server recomputes the same parameters.

- ``random`` draws trial ``i`` from a generator seeded by ``(seed, i)`` alone, and ``rule: sobol``
  takes point ``i`` of a scrambled Sobol sequence. That is scipy's, which optuna's QMCSampler wraps;
  the sampler itself does not fit: it counts its asks in study state, takes its first point at
  random to learn the space, and samples a nested choice's branches outside the sequence.
- ``grid`` decodes ``i`` as a mixed-radix number over the choices, parameters in name order.
- ``bayesian`` rebuilds an optuna TPE study from the finished and running trials and asks it once,
  seeded by ``(seed, i)``.

Trial parameters are JSON values keyed by search space name; a nested choice gives the chosen
sub-space as a dict of its own sampled values (:func:`flatten_params` spells those ``p.key``).
optuna and scipy are imported inside the functions so ``import shoal`` stays cheap. They are the
``shoal[sweeps]`` extra, not core dependencies: :func:`require_sampler_dependencies` refuses a
bayesian or sobol sweep at submission when the server lacks them (random and grid need neither).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import random
import statistics
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shoal.entities.sweep.sampling import RandomSamplingAlgorithm, parse_sampling_algorithm
from shoal.entities.sweep.search_space import (
    Choice,
    LogNormal,
    LogUniform,
    Normal,
    QLogNormal,
    QLogUniform,
    QNormal,
    QUniform,
    Randint,
    SweepDistribution,
    Uniform,
    parse_search_space,
)
from shoal.errors import UnsupportedError

SWEEPS_EXTRA = "pip install 'shoal[sweeps]'"
# What each sampler imports beyond Shoal's core dependencies (the `sweeps` extra).
SAMPLER_MODULES = {"bayesian": ("optuna", "numpy"), "sobol": ("scipy", "numpy")}

BAYESIAN_RETRIES = 20  # asks before a finite space's duplicate proposal gives way to an untried point


def require_sampler_dependencies(algorithm: Any) -> None:
    """Refuse a sampler whose packages this server lacks (bayesian: optuna; sobol: scipy), naming the extra."""
    algorithm = parse_sampling_algorithm(algorithm)
    if algorithm.type == "bayesian":
        what, needs = "bayesian sampling", SAMPLER_MODULES["bayesian"]
    elif isinstance(algorithm, RandomSamplingAlgorithm) and algorithm.rule == "sobol":
        what, needs = "random sampling with the sobol rule", SAMPLER_MODULES["sobol"]
    else:
        return
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        raise UnsupportedError(
            f"sampling_algorithm: {what} needs {', '.join(missing)}, which this Shoal server does not have; "
            f"install the sweeps extra where the server runs ({SWEEPS_EXTRA}) and restart it, "
            "or use random or grid sampling"
        )


@dataclass(frozen=True)
class Trial:
    """An earlier trial: its parameters and final objective value (None: failed, or never logged it)."""

    params: Mapping[str, Any]
    value: float | None = None
    running: bool = False


def _seed(*parts: Any) -> int:
    """A 32-bit seed from any parts; stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _key(params: Any) -> str:
    return json.dumps(params, sort_keys=True)


def _quantize(x: float, q: int | float) -> int | float:
    """Azure's ``round(x / q) * q``; integer ``q`` gives ints, and a float ``q`` gives no 0.30000000000000004."""
    k = round(x / q)
    if isinstance(q, int):
        return k * q
    return float(Decimal(k) * Decimal(repr(q)))


def _q_range(dist: QUniform) -> tuple[int, int]:
    return round(dist.min_value / dist.q), round(dist.max_value / dist.q)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _coerce(space: Any) -> dict[str, SweepDistribution]:
    if isinstance(space, Mapping) and space and all(isinstance(v, SweepDistribution) for v in space.values()):
        return dict(space)
    return parse_search_space(space)


def _sub_entries(option: dict[str, Any]) -> list[tuple[str, SweepDistribution]]:
    return [(k, option[k]) for k in sorted(option) if isinstance(option[k], SweepDistribution)]


def _width(dist: SweepDistribution) -> int:
    if not isinstance(dist, Choice):
        return 1
    return 1 + sum(_width(d) for v in dist.values if isinstance(v, dict) for _, d in _sub_entries(v))


def _from_unit(dist: SweepDistribution, u: float, base: float) -> Any:
    """The value at quantile ``u`` of a non-choice expression (Azure's formulas)."""
    if isinstance(dist, Randint):
        return min(int(u * dist.upper), dist.upper - 1)
    if isinstance(dist, Uniform | LogUniform | QUniform | QLogUniform):
        x = dist.min_value + u * (dist.max_value - dist.min_value)
    else:
        assert isinstance(dist, Normal | LogNormal | QNormal | QLogNormal)
        u = min(max(u, 1e-12), 1 - 1e-12)
        x = statistics.NormalDist(dist.mu, dist.sigma).inv_cdf(u)
    if isinstance(dist, LogUniform | QLogUniform | LogNormal | QLogNormal):
        x = math.exp(x) if base == math.e else base**x
    if isinstance(dist, QUniform | QLogUniform | QNormal | QLogNormal):
        return _quantize(x, dist.q)
    return x


def _realize(dist: SweepDistribution, u: Sequence[float], pos: int, base: float) -> tuple[Any, int]:
    """The value of ``dist`` from coordinates ``u[pos:]``, and the position after its block."""
    if not isinstance(dist, Choice):
        return _from_unit(dist, u[pos], base), pos + 1
    chosen = min(int(u[pos] * len(dist.values)), len(dist.values) - 1)
    pos += 1
    value: Any = None
    for i, option in enumerate(dist.values):
        if not isinstance(option, dict):
            if i == chosen:
                value = option
            continue
        sampled: dict[str, Any] = {}
        for name, sub in _sub_entries(option):
            if i == chosen:
                sampled[name], pos = _realize(sub, u, pos, base)
            else:
                pos += _width(sub)
        if i == chosen:
            value = {k: sampled.get(k, v) for k, v in option.items()}
    return value, pos


def _from_coordinates(space: dict[str, SweepDistribution], u: Sequence[float], base: float) -> dict[str, Any]:
    params, pos = {}, 0
    for name in sorted(space):
        params[name], pos = _realize(space[name], u, pos, base)
    return params


def _random(space: dict[str, SweepDistribution], algorithm: RandomSamplingAlgorithm, seed: int, index: int) -> dict:
    dims = sum(_width(d) for d in space.values())
    if algorithm.rule == "sobol":
        from scipy.stats import qmc

        engine = qmc.Sobol(d=dims, scramble=True, seed=_seed("sobol", seed))
        if index:
            engine.fast_forward(index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "balance properties" warnings: we take one point at a time
            u = [float(x) for x in engine.random(1)[0]]
    else:
        rng = random.Random(f"shoal-sweep:{seed}:{index}")
        u = [rng.random() for _ in range(dims)]
    return _from_coordinates(space, u, algorithm.base)


def _unique(values: Sequence[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(_key(value), value)  # 1, 1.0 and True stay distinct: their JSON differs
    return list(seen.values())


def _grid_axes(space: dict[str, SweepDistribution]) -> tuple[list[str], list[list[Any]]]:
    names = sorted(space)
    axes = []
    for name in names:
        dist = space[name]
        if not isinstance(dist, Choice) or dist.nested:
            raise ValueError(f"grid sampling needs plain choices; {name!r} is {dist.type}")
        axes.append(_unique(dist.values))
    return names, axes


def grid_size(space: Any) -> int:
    """How many trials a grid sweep over ``space`` has (the product of the distinct choices)."""
    return math.prod(len(axis) for axis in _grid_axes(_coerce(space))[1])


def _grid(space: dict[str, SweepDistribution], index: int) -> dict | None:
    names, axes = _grid_axes(space)
    if index < 0 or index >= math.prod(len(a) for a in axes):
        return None
    params: dict[str, Any] = {}
    for name, axis in zip(reversed(names), reversed(axes), strict=True):  # the last name varies fastest
        index, digit = divmod(index, len(axis))
        params[name] = axis[digit]
    return {name: params[name] for name in names}


def _optuna_encode(dist: SweepDistribution, value: Any, path: str, params: dict, dists: dict) -> bool:
    """Put ``value`` (a trial's parameter) into optuna's terms; False when it is not in ``dist``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, Uniform):
        if not _finite(value) or not dist.min_value <= value <= dist.max_value:
            return False
        params[path], dists[path] = float(value), FloatDistribution(dist.min_value, dist.max_value)
        return True
    if isinstance(dist, QUniform):
        low, high = _q_range(dist)
        if not _finite(value) or not low <= round(value / dist.q) <= high:
            return False
        params[path], dists[path] = round(value / dist.q), IntDistribution(low, high)
        return True
    if not isinstance(dist, Choice):
        return False
    for i, option in enumerate(dist.values):
        sub_params: dict = {}
        sub_dists: dict = {}
        if _option_matches(option, value, f"{path}/{i}", sub_params, sub_dists):
            params.update(sub_params)
            dists.update(sub_dists)
            params[path], dists[path] = i, CategoricalDistribution(list(range(len(dist.values))))
            return True
    return False


def _option_matches(option: Any, value: Any, path: str, params: dict, dists: dict) -> bool:
    """Whether a choice's ``value`` came from ``option`` (the first match wins, as a choice is a list)."""
    if not isinstance(option, dict):
        return _key(option) == _key(value)
    if not isinstance(value, Mapping) or set(value) != set(option):
        return False
    return all(
        _optuna_encode(entry, value[name], f"{path}/{name}", params, dists)
        if isinstance(entry, SweepDistribution)
        else _key(entry) == _key(value[name])
        for name, entry in option.items()
    )


def _optuna_suggest(dist: SweepDistribution, trial: Any, path: str) -> Any:
    if isinstance(dist, Uniform):
        return trial.suggest_float(path, dist.min_value, dist.max_value)
    if isinstance(dist, QUniform):
        return _quantize(trial.suggest_int(path, *_q_range(dist)) * dist.q, dist.q)
    if not isinstance(dist, Choice):
        raise ValueError(f"bayesian sampling supports choice, uniform and quniform, not {dist.type}")
    i = trial.suggest_categorical(path, list(range(len(dist.values))))
    option = dist.values[i]
    if not isinstance(option, dict):
        return option
    return {
        name: _optuna_suggest(entry, trial, f"{path}/{i}/{name}") if isinstance(entry, SweepDistribution) else entry
        for name, entry in option.items()
    }


def _enumerate(dist: SweepDistribution) -> Iterator[Any]:
    """Every value of a finite expression, in order."""
    if isinstance(dist, Randint):
        yield from range(dist.upper)
    elif isinstance(dist, QUniform):
        low, high = _q_range(dist)
        yield from (_quantize(k * dist.q, dist.q) for k in range(low, high + 1))
    elif isinstance(dist, Choice):
        for option in dist.values:
            if not isinstance(option, dict):
                yield option
                continue
            names = list(option)
            axes = [_enumerate(v) if isinstance(v, SweepDistribution) else [v] for v in option.values()]
            for combo in itertools.product(*(list(a) for a in axes)):
                yield dict(zip(names, combo, strict=True))
    else:
        raise ValueError(f"{dist.type} has no finite set of values")


def _size(dist: SweepDistribution) -> int | None:
    if isinstance(dist, Randint):
        return dist.upper
    if isinstance(dist, QUniform):
        low, high = _q_range(dist)
        return high - low + 1
    if not isinstance(dist, Choice):
        return None
    total = 0
    for option in dist.values:
        sizes = (
            [_size(v) for v in option.values() if isinstance(v, SweepDistribution)] if isinstance(option, dict) else []
        )
        if None in sizes:
            return None
        total += math.prod(sizes)
    return total


def _bayesian(
    space: dict[str, SweepDistribution], seed: int, history: Sequence[Trial], goal: str, index: int
) -> dict[str, Any] | None:
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = sorted(space)
    sizes = [_size(space[n]) for n in names]
    size = None if None in sizes else math.prod(sizes)  # type: ignore[arg-type]
    tried = {_key(dict(t.params)) for t in history}
    if size is not None and len(tried) >= size:
        return None

    sampler = optuna.samplers.TPESampler(seed=_seed("bayesian", seed, index))
    study = optuna.create_study(direction=goal, sampler=sampler)
    for past in history:
        params: dict = {}
        dists: dict = {}
        if not all(n in past.params and _optuna_encode(space[n], past.params[n], n, params, dists) for n in names):
            continue  # not a point of this space (an edited record): TPE learns nothing from it
        if past.running:
            state, value = TrialState.RUNNING, None
        elif past.value is not None and _finite(past.value):
            state, value = TrialState.COMPLETE, float(past.value)
        else:
            state, value = TrialState.FAIL, None
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=dists))

    for _ in range(BAYESIAN_RETRIES if size is not None else 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sampled independently": a nested choice's branches differ
            trial = study.ask()
            proposal = {n: _optuna_suggest(space[n], trial, n) for n in names}
        if _key(proposal) not in tried:
            return proposal
        study.tell(trial, state=TrialState.FAIL)  # a repeat: ask again, the sampler's state has moved on
    # TPE keeps proposing tried points of a small finite space: take the first untried one.
    for combo in itertools.product(*(list(_enumerate(space[n])) for n in names)):
        proposal = dict(zip(names, combo, strict=True))
        if _key(proposal) not in tried:
            return proposal
    return None


def next_params(
    space: Any,
    algorithm: Any,
    *,
    sweep_seed: int,
    history: Sequence[Trial],
    goal: str,
    index: int,
) -> dict[str, Any] | None:
    """The parameters of trial ``index`` (0-based), or None when the space has no more trials.

    ``algorithm``'s own ``seed`` (random) wins over ``sweep_seed``, the sweep's stored seed.
    ``history`` (the earlier trials) is read by ``bayesian`` only."""
    space = _coerce(space)
    algorithm = parse_sampling_algorithm(algorithm) if isinstance(algorithm, str | Mapping) else algorithm
    if algorithm.type == "grid":
        return _grid(space, index)
    if algorithm.type == "random":
        seed = algorithm.seed if algorithm.seed is not None else sweep_seed
        return _random(space, algorithm, seed, index)
    return _bayesian(space, sweep_seed, history, goal.lower(), index)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"kernel": "rbf", "gamma": 0.1}}`` → ``{"model.kernel": "rbf", "model.gamma": 0.1}``."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{key}."))
        else:
            flat[key] = value
    return flat
