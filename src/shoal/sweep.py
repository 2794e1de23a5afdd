"""``azure.ai.ml.sweep`` under Shoal's name: ``from shoal.sweep import Choice, Uniform, BanditPolicy``
is the import line of a notebook with ``azure.ai.ml`` replaced by ``shoal``. The classes live in
:mod:`shoal.entities.sweep`."""

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
)

__all__ = [
    "BanditPolicy",
    "BayesianSamplingAlgorithm",
    "Choice",
    "GridSamplingAlgorithm",
    "LogNormal",
    "LogUniform",
    "MedianStoppingPolicy",
    "Normal",
    "Objective",
    "QLogNormal",
    "QLogUniform",
    "QNormal",
    "QUniform",
    "Randint",
    "RandomSamplingAlgorithm",
    "SweepJobLimits",
    "TruncationSelectionPolicy",
    "Uniform",
]
