"""Sweep job parts (``_schema/_sweep/*``, ``azure.ai.ml.sweep``): search space, sampling, policies.

Everything here is declarative: the YAML forms, the SDK classes with Azure's names and
constructor arguments, and Azure's rules about which parts go together. Sampling and early
termination live in ``shoal.services.jobs.sweep_sampling`` and ``…jobs.early_termination``.

The modules: ``search_space`` (the ten expressions, nested choice), ``sampling`` (the sampling
algorithms), ``early_termination`` (the policies), ``objective`` (objective and limits),
``rules`` (Azure's rules across them) and ``fields`` (the number types they share).
"""

from shoal.entities.sweep.early_termination import (
    BanditPolicy,
    EarlyTerminationPolicy,
    MedianStoppingPolicy,
    Policy,
    TruncationSelectionPolicy,
    parse_early_termination,
)
from shoal.entities.sweep.objective import Objective, SweepJobLimits
from shoal.entities.sweep.rules import check_sweep_rules, sweep_rule_issues
from shoal.entities.sweep.sampling import (
    BayesianSamplingAlgorithm,
    GridSamplingAlgorithm,
    RandomSamplingAlgorithm,
    SamplingAlgorithm,
    parse_sampling_algorithm,
)
from shoal.entities.sweep.search_space import (
    Choice,
    Distribution,
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
    iter_expressions,
    parse_search_space,
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
