"""Azure ML curated environments as pip requirement sets.

A curated environment is a Docker image Microsoft maintains. Shoal cannot pull those images, so
each one it knows becomes the requirement set that scripts written for it depend on: the major
library at the image's version, and the pins that break scripts when missed (the real images
carry pandas 1.x, and numpy before 1.24 still has ``np.float``). Azure-only packages
(``azureml-mlflow``, ``azureml-core``, ...) are left out: they talk to Azure, and Shoal tracks
with plain MLflow.

Names are matched case-insensitively, with or without the ``AzureML-`` prefix, so
``AzureML-sklearn-1.5``, ``azureml:AzureML-sklearn-1.5@latest`` and
``azureml://registries/azureml/environments/sklearn-1.5/labels/latest`` are one environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shoal.entities.kind_names import KIND_NAMES
from shoal.errors import SpecError, UnsupportedError

CURATED_PREFIX = "azureml-"
CURATED_REGISTRY = "azureml"
CURATED_IMAGE_PREFIX = "mcr.microsoft.com/azureml/curated/"


@dataclass(frozen=True)
class Curated:
    """What a curated environment becomes. No requirements means the host interpreter."""

    name: str  # as Azure ML spells it, e.g. "AzureML-sklearn-1.5"
    requirements: tuple[str, ...] = ()
    torch_backend: str | None = None
    note: str | None = None


_SKLEARN_15 = Curated(
    "AzureML-sklearn-1.5",
    ("scikit-learn==1.5.*", "pandas<2", "numpy<2", "scipy", "mlflow", "matplotlib", "joblib"),
)
_SKLEARN_10 = Curated(
    "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
    ("scikit-learn>=1.0,<1.2", "pandas<2", "numpy<1.24", "scipy", "mlflow", "matplotlib", "joblib"),
    note=(
        "scikit-learn 1.0 has no wheels for Python 3.11 and later; 1.1 keeps the 1.0 API "
        "(the removals of its deprecations came in 1.2), so the newest of 1.0/1.1 with a wheel is installed"
    ),
)
_LIGHTGBM_33 = Curated(
    "AzureML-lightgbm-3.3",
    # lightgbm 3.3 calls check_X_y(force_all_finite=...): deprecated in scikit-learn 1.6, removed in 1.8 (a
    # TypeError in every fit); 1.6 also changed estimator tags, which LightGBM only followed in 4.6.
    ("lightgbm==3.3.*", "scikit-learn<1.6", "pandas<2", "numpy<2", "scipy", "mlflow", "matplotlib", "joblib"),
)
_MLFLOW_INFERENCE = Curated("AzureML-mlflow-ubuntu20.04-py38-cpu-inference", ("mlflow", "pandas<2", "numpy<2"))
_MINIMAL = Curated("AzureML-Minimal", note="a minimal image: a clean venv of the host Python")

# Lower-case name without the AzureML- prefix -> environment.
_EXACT: dict[str, Curated] = {
    "sklearn-1.5": _SKLEARN_15,
    "sklearn-1.0-ubuntu20.04-py38-cpu": _SKLEARN_10,
    "sklearn-1.0": _SKLEARN_10,
    "lightgbm-3.3": _LIGHTGBM_33,
    "mlflow-ubuntu20.04-py38-cpu-inference": _MLFLOW_INFERENCE,
    "minimal-ubuntu22.04-py39-cpu-inference": Curated("AzureML-minimal-ubuntu22.04-py39-cpu-inference"),
    "minimal": _MINIMAL,
}


def _torch(name: str, match: re.Match[str]) -> Curated:
    major, minor = int(match["major"]), int(match["minor"])
    # torch before 2.0 has no wheels for current Pythons; the newest keeps the 1.x API scripts use.
    pin = f"torch=={major}.{minor}.*" if major >= 2 else f"torch>={major}.{minor}"
    return Curated(name, (pin, "torchvision", "numpy"), torch_backend="cpu", note="CPU build of PyTorch")


def _tensorflow(name: str, match: re.Match[str]) -> Curated:
    major, minor = int(match["major"]), int(match["minor"])
    # TensorFlow has wheels for Python 3.11 from 2.12; older names get the newest release instead.
    pin = f"tensorflow=={major}.{minor}.*" if (major, minor) >= (2, 12) else f"tensorflow>={major}.{minor}"
    return Curated(name, (pin, "numpy", "pandas"), note="TensorFlow from PyPI (CPU unless CUDA is present)")


def _sklearn(name: str, match: re.Match[str]) -> Curated:
    major, minor = int(match["major"]), int(match["minor"])
    if (major, minor) < (1, 2):
        # 0.x and 1.0/1.1 have no wheels for current Pythons; 1.1 keeps their API (see AzureML-sklearn-1.0).
        return Curated(name, _SKLEARN_10.requirements, note=_SKLEARN_10.note)
    return Curated(name, (f"scikit-learn=={major}.{minor}.*", *_SKLEARN_15.requirements[1:]))


def _lightgbm(name: str, match: re.Match[str]) -> Curated:
    major, minor = int(match["major"]), int(match["minor"])
    if major < 4:
        # 3.x images (3.2, 3.3) get LightGBM 3.3, which keeps the 3.x API, with the pins it needs.
        return Curated(name, _LIGHTGBM_33.requirements, note="LightGBM 3.3 (the 3.x API)" if minor != 3 else None)
    return Curated(name, (f"lightgbm=={major}.{minor}.*", *_LIGHTGBM_33.requirements[1:]))


def _spark(name: str, match: re.Match[str]) -> Curated:
    # Serverless Spark's runtimes carry pandas 1.x and numpy 1.x (pyspark 3.4 breaks on pandas 2).
    line = f"{match['major']}.{match['minor']}"
    note = None
    if line not in ("3.3", "3.4", "3.5"):
        line, note = "3.5", "pyspark 3.5 (Java 17 needs Spark 3.3 or later)"
    return Curated(name, (f"pyspark=={line}.*", "pandas<2", "numpy<2"), note=note)


_FAMILIES: list[tuple[re.Pattern[str], str, Callable[[str, re.Match[str]], Curated]]] = [
    (re.compile(r"sklearn-(?P<major>\d+)\.(?P<minor>\d+)(\.\d+)?(-.*)?"), "sklearn-<version>-…", _sklearn),
    (re.compile(r"scikit-learn-(?P<major>\d+)\.(?P<minor>\d+)(\.\d+)?(-.*)?"), "Scikit-learn-<version>", _sklearn),
    (re.compile(r"lightgbm-(?P<major>\d+)\.(?P<minor>\d+)(\.\d+)?(-.*)?"), "lightgbm-<version>-…", _lightgbm),
    (re.compile(r"(acpt-)?pytorch-(?P<major>\d+)\.(?P<minor>\d+)(-.*)?"), "[ACPT-]pytorch-<version>-…", _torch),
    (re.compile(r"tensorflow-(?P<major>\d+)\.(?P<minor>\d+)(-.*)?"), "tensorflow-<version>-…", _tensorflow),
    (re.compile(r"spark-(?P<major>\d+)\.(?P<minor>\d+)(\.\d+)?(-.*)?"), "spark-<runtime version>", _spark),
    (re.compile(r"minimal(-.*)?"), "minimal-…", lambda name, _: Curated(name)),
    (
        re.compile(r"mlflow(-.*)?-inference"),
        "mlflow-…-inference",
        lambda name, _: Curated(name, _MLFLOW_INFERENCE.requirements),
    ),
]

_REGISTRY_RE = re.compile(
    r"azureml://registries/(?P<reg>[^/]+)/(?P<plural>[^/]+)/(?P<name>[^/]+)(?:/(?:versions|labels)/[^/]+)?/?"
)


def known_names() -> list[str]:
    return sorted({c.name for c in _EXACT.values()} | {f"AzureML-{label}" for _, label, _ in _FAMILIES})


def curated_name(ref: str) -> str | None:
    """The curated environment an environment reference names, or None when it names a workspace asset.

    The result is the bare name as written (``sklearn-1.5`` or ``AzureML-sklearn-1.5``); a registry
    reference to another registry than ``azureml`` is refused, since only the server can resolve it.
    """
    ref = ref.strip()
    registry = _REGISTRY_RE.fullmatch(ref)
    if registry:
        if registry["plural"] != KIND_NAMES["environment"].plural:
            raise SpecError(f"'{ref}' names registry {registry['plural']}, not an environment")
        if registry["reg"].lower() != CURATED_REGISTRY:
            raise UnsupportedError(
                f"environment '{ref}' lives in registry '{registry['reg']}'; only the curated 'azureml' "
                "registry is known locally"
            )
        return registry["name"]
    if ref.startswith("azureml://"):
        return None
    bare = ref[len("azureml:") :] if ref.startswith("azureml:") else ref
    # name@label or name:version; the SDK splits the label on the last '@' and the version on the first ':'.
    name = bare.rsplit("@", 1)[0] if "@" in bare else bare.split(":", 1)[0]
    return name if name.lower().startswith(CURATED_PREFIX) else None


def lookup(name: str) -> Curated:
    """The curated environment called ``name`` (with or without ``AzureML-``), or UnsupportedError."""
    bare = name[len(CURATED_PREFIX) :] if name.lower().startswith(CURATED_PREFIX) else name
    key = bare.lower()
    if key in _EXACT:
        return _with_python_note(_EXACT[key], key)
    for pattern, _, make in _FAMILIES:
        match = pattern.fullmatch(key)
        if match:
            return _with_python_note(make(f"AzureML-{bare}", match), key)
    raise UnsupportedError(
        f"curated environment '{name}' is not known to Shoal; known: {', '.join(known_names())}. "
        "Use an environment with a conda_file instead",
        details={"name": name, "known": known_names()},
    )


_PY_IN_NAME = re.compile(r"(?:^|-)py(?P<major>\d)(?P<minor>\d{1,2})(?:-|$)")


def _with_python_note(env: Curated, key: str) -> Curated:
    """Every curated environment runs on the server's Python (uv cannot fetch interpreters offline);
    a name that promises another (``…-py37-…``) says so in the build log."""
    match = _PY_IN_NAME.search(key)
    if match is None:
        return env
    wanted = f"{match['major']}.{match['minor']}"
    note = f"the image's Python {wanted} is not reproduced: the environment is built on the server's Python"
    return Curated(env.name, env.requirements, env.torch_backend, f"{env.note}; {note}" if env.note else note)


def from_image(image: str) -> Curated | None:
    """A curated image (``mcr.microsoft.com/azureml/curated/sklearn-1.5:12``) known to Shoal, else None."""
    if not image.startswith(CURATED_IMAGE_PREFIX):
        return None
    name = image[len(CURATED_IMAGE_PREFIX) :].split("@", 1)[0].split(":", 1)[0]
    try:
        return lookup(name)
    except UnsupportedError:
        return None
