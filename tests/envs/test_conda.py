"""Conda environment files become pip requirements: table-driven."""

from __future__ import annotations

import pytest

from shoal.envs.conda import parse_match_spec, translate_conda
from shoal.errors import SpecError, UnsupportedError


@pytest.mark.parametrize(
    ("entry", "name", "version"),
    [
        ("numpy", "numpy", None),
        ("numpy=1.26", "numpy", "==1.26.*"),  # conda '=' is a prefix match
        ("numpy=1.26.*", "numpy", "==1.26.*"),
        ("numpy=1.26*", "numpy", "==1.26.*"),
        ("numpy==1.26.4", "numpy", "==1.26.4"),
        ("numpy>=1.2", "numpy", ">=1.2"),
        ("numpy>=1.2,<2", "numpy", ">=1.2,<2"),
        ("numpy >=1.2", "numpy", ">=1.2"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy", "==1.26.4"),  # the build string is dropped
        ("conda-forge::numpy=1.26", "numpy", "==1.26.*"),
        ("defaults::numpy", "numpy", None),
        ("numpy 1.26.*", "numpy", "==1.26.*"),
        ("numpy 1.26.4 py311_0", "numpy", "==1.26.4"),
        ("numpy[version='>=1.2,<2']", "numpy", ">=1.2,<2"),
        ("python=3.11", "python", "==3.11.*"),
        ("  scikit-learn = 1.5 ", "scikit-learn", "==1.5.*"),
    ],
)
def test_match_spec(entry: str, name: str, version: str | None) -> None:
    assert parse_match_spec(entry) == (name, version)


@pytest.mark.parametrize(
    ("dependency", "requirement"),
    [
        ("pytorch", "torch"),
        ("pytorch=2.1", "torch==2.1.*"),
        ("py-xgboost=1.7", "xgboost==1.7.*"),
        ("scikit-learn=1.5", "scikit-learn==1.5.*"),
        ("matplotlib-base", "matplotlib"),
        ("python-dateutil", "python-dateutil"),
        ("pyyaml", "pyyaml"),
        ("tensorflow-cpu", "tensorflow-cpu"),
        ("tensorflow-gpu=2.15", "tensorflow==2.15.*"),
        ("conda-forge::lightgbm=3.3.5", "lightgbm==3.3.5.*"),
        ("numpy>=1.2", "numpy>=1.2"),
        ("pandas=1.5.3=py311_0", "pandas==1.5.3"),
        ("cudatoolkit=11.8", None),
        ("mkl", None),
        ("nomkl", None),
        ("libgcc", None),
        ("libgcc-ng>=12", None),
        ("_libgcc_mutex=0.1=main", None),
        ("ca-certificates", None),
        ("openssl=3", None),
        ("cuda-nvcc", None),
        ("pip", None),
        ("pip=23.3", None),
    ],
)
def test_conda_dependency(dependency: str, requirement: str | None) -> None:
    out = translate_conda({"dependencies": [dependency]})
    assert out.requirements == ([requirement] if requirement else [])
    if requirement is None and not dependency.startswith("pip"):
        assert any("dropped" in note for note in out.notes), out.notes


@pytest.mark.parametrize(
    ("dependency", "python"),
    [("python=3.11", "==3.11.*"), ("python>=3.8", ">=3.8"), ("python", None), ("python==3.11.7", "==3.11.7")],
)
def test_python_constraint_is_recorded_not_installed(dependency: str, python: str | None) -> None:
    out = translate_conda({"dependencies": [dependency, "six"]})
    assert out.python == python
    assert out.requirements == ["six"]


def test_pip_section_is_taken_verbatim() -> None:
    pip = ["scikit-learn==1.4.2", "mlflow", "pandas<2.3", "requests[socks]>=2", "pkg @ https://example.com/pkg.whl"]
    out = translate_conda({"channels": ["conda-forge"], "dependencies": ["python=3.10", "pip", {"pip": pip}]})
    assert out.requirements == pip
    assert out.python == "==3.10.*"


def test_pip_index_options_become_uv_options() -> None:
    out = translate_conda(
        {"dependencies": [{"pip": ["--extra-index-url https://example.com/simple", "--pre", "--upgrade", "six"]}]}
    )
    assert out.requirements == ["six"]
    assert out.pip_options == [
        "--extra-index-url",
        "https://example.com/simple",
        "--index-strategy",
        "unsafe-best-match",
        "--prerelease",
        "allow",
    ]
    assert any("--upgrade" in note for note in out.notes)


def test_index_url_with_equals_sign_in_query() -> None:
    out = translate_conda({"dependencies": [{"pip": ["--index-url=https://example.com/simple?a=b"]}]})
    assert out.pip_options == ["--index-url", "https://example.com/simple?a=b"]


@pytest.mark.parametrize("line", ["-r requirements.txt", "-e ./src", "--no-binary :all:"])
def test_unsupported_pip_options(line: str) -> None:
    with pytest.raises(UnsupportedError, match="not supported"):
        translate_conda({"dependencies": [{"pip": [line]}]})


def test_azureml_mlflow_becomes_mlflow_skinny_unless_mlflow_is_there() -> None:
    alone = translate_conda({"dependencies": [{"pip": ["azureml-mlflow==1.57", "six"]}]})
    assert alone.requirements == ["mlflow-skinny", "six"]
    with_mlflow = translate_conda({"dependencies": [{"pip": ["mlflow==2.16.0", "azureml-mlflow"]}]})
    assert with_mlflow.requirements == ["mlflow==2.16.0"]


def test_cpuonly_asks_for_cpu_torch() -> None:
    out = translate_conda({"dependencies": ["pytorch::pytorch=2.3", "pytorch::cpuonly"]})
    assert out.requirements == ["torch==2.3.*"]
    assert out.torch_backend == "cpu"


@pytest.mark.parametrize(
    ("conda", "error"),
    [
        ({"dependencies": ["numpy>=1.2|<1.0"]}, UnsupportedError),
        ({"dependencies": "numpy"}, SpecError),
        ({"dependencies": [{"conda": ["x"]}]}, UnsupportedError),
        ({"dependencies": [{"pip": "six"}]}, SpecError),
        ({"dependencies": ["python=three"]}, SpecError),
        ({"dependencies": [["nested"]]}, SpecError),
    ],
)
def test_invalid_conda_files(conda: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        translate_conda(conda)
