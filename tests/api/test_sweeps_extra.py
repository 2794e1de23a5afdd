"""Bayesian and sobol sweeps need the `sweeps` extra (optuna, scipy): without it they are refused at submission."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from shoal.services.jobs.sweep_sampling import require_sampler_dependencies
from tests.api.conftest import error_of

BLOCKED = {"optuna", "scipy", "numpy"}


@pytest.fixture
def without_sweeps_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.split(".")[0] in BLOCKED else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _sweep(api: Any, sampling: Any) -> Any:
    body = {
        "type": "sweep",
        "trial": {"command": "echo ${{search_space.x}}", "environment": {"image": "python:3.11"}},
        "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
        "sampling_algorithm": sampling,
        "objective": {"goal": "maximize", "primary_metric": "acc"},
        "limits": {"max_total_trials": 2},
        "compute": "local",
    }
    return api.http.post(api.url("/jobs"), json=body)


@pytest.mark.usefixtures("without_sweeps_extra")
def test_bayesian_and_sobol_are_refused_naming_the_extra(api):
    for sampling, what in (("bayesian", "optuna"), ({"type": "random", "rule": "sobol"}, "scipy")):
        r = _sweep(api, sampling)
        assert r.status_code == 400, r.text
        err = error_of(r)
        assert err["code"] == "UNSUPPORTED", err
        assert "pip install 'shoal[sweeps]'" in err["message"] and what in err["message"], err
    assert api.http.get(api.url("/jobs")).json()["value"] == []
    # Random and grid sampling need neither.
    for sampling in ("random", "grid", {"type": "random", "seed": 3}):
        require_sampler_dependencies(sampling)
    r = _sweep(api, "random")
    assert r.status_code == 200, r.text


def test_with_the_extra_installed_nothing_is_refused():
    for sampling in ("bayesian", {"type": "random", "rule": "sobol"}, "grid", "random"):
        require_sampler_dependencies(sampling)
