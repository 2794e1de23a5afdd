"""``from shoal.automl import classification`` (``from azure.ai.ml.automl import …`` after the
import swap): AutoML is Azure's hosted model search (featurization, dozens of candidate models,
ensembling, explanations), which Shoal does not run. Every name of this module is therefore an
error saying so, raised where the notebook first reaches for it, rather than an ImportError or a
job that fails later: train with a ``command`` job, or search with a ``sweep``."""

from __future__ import annotations

from typing import NoReturn

from shoal.errors import UnsupportedError

MESSAGE = (
    "Shoal does not run AutoML (azure.ai.ml.automl.{name}): it is Azure's hosted model search. "
    "Train with a command job, or search hyperparameters with a sweep (command(...)(x=Choice([...])).sweep(...))"
)


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(MESSAGE.format(name=name))
