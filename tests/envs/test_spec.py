"""EnvSpec: normalisation from bodies and references, curated names, and a hash that ignores spelling."""

from __future__ import annotations

import pytest

from shoal.entities import Environment
from shoal.envs import EnvSpec, known_curated_environments, normalize_environment
from shoal.envs.pyver import satisfies
from shoal.errors import SpecError, UnsupportedError


def conda_body(*deps: object, name: str = "env", image: str = "python:3.11") -> dict:
    return {"name": name, "version": "1", "image": image, "conda_file": {"dependencies": list(deps)}}


# --- hash --------------------------------------------------------------------------------------


def test_hash_ignores_order_case_whitespace_and_duplicates() -> None:
    a = EnvSpec(requirements=("six==1.16.0", "PyYAML >= 6.0", "idna"), python="==3.11.*")
    b = EnvSpec(requirements=(" idna ", "pyyaml>=6.0", "six == 1.16.0", "idna"), python=" ==3.11.* ")
    assert a.spec_hash() == b.spec_hash()
    assert a == b
    assert len(a.spec_hash()) == 64


def test_hash_ignores_where_a_spec_came_from() -> None:
    a = EnvSpec(requirements=("six",), source="conda_file of 'a:1'", notes=("x",))
    b = EnvSpec(requirements=("six",), source="conda_file of 'b:7'")
    assert a.spec_hash() == b.spec_hash()


def test_two_bodies_with_the_same_content_hash_equal() -> None:
    one = normalize_environment(conda_body("python=3.11", {"pip": ["six==1.16.0", "idna"]}, name="one"))
    two = normalize_environment(conda_body({"pip": ["idna", "six==1.16.0"]}, "python=3.11", name="two"))
    assert one.spec_hash() == two.spec_hash()


@pytest.mark.parametrize(
    "other",
    [
        EnvSpec(requirements=("six==1.16.0", "idna==3.6")),
        EnvSpec(requirements=("six==1.16.0",), python="==3.12.*"),
        EnvSpec(requirements=("six==1.16.0",), pip_options=("--index-url", "https://example.com/simple")),
        EnvSpec(requirements=("six==1.16.0",), torch_backend="cpu"),
        EnvSpec(requirements=("six==1.15.0",)),
    ],
)
def test_hash_changes_with_what_is_installed(other: EnvSpec) -> None:
    assert EnvSpec(requirements=("six==1.16.0",)).spec_hash() != other.spec_hash()


def test_extras_and_markers_are_normalised_but_kept() -> None:
    spec = EnvSpec(requirements=("Requests[SOCKS, Security] >= 2", 'tomli; python_version < "3.11"'))
    assert spec.requirements == ("requests[security,socks]>=2", 'tomli; python_version < "3.11"')


# --- host images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11",
        "python:3.10-slim",
        "library/python:3.12",
        "docker.io/library/python:3.11-bookworm",
        "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
        "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04",
        "ubuntu:22.04",
    ],
)
def test_images_without_a_conda_file_run_on_the_host(image: str) -> None:
    spec = normalize_environment({"name": "e", "version": "1", "image": image})
    assert spec.kind == "host"
    assert spec.requirements == ()
    assert image in spec.source


def test_an_image_with_a_conda_file_is_a_venv() -> None:
    spec = normalize_environment(conda_body("python=3.11", "pip", {"pip": ["six==1.16.0"]}))
    assert spec.kind == "venv"
    assert spec.requirements == ("six==1.16.0",)
    assert spec.python == "==3.11.*"
    assert "'env:1'" in spec.source


def test_a_conda_file_without_packages_is_host_unless_it_asks_for_a_python() -> None:
    assert normalize_environment(conda_body("pip")).kind == "host"
    assert normalize_environment(conda_body("python=3.11", "pip")).kind == "venv"  # the builder decides


def test_environment_entity_is_accepted() -> None:
    env = Environment(name="e", version="1", image="python:3.11", conda_file={"dependencies": [{"pip": ["six"]}]})
    assert normalize_environment(env).requirements == ("six",)


def test_conda_file_as_yaml_text_and_as_a_path() -> None:
    text = "dependencies:\n  - python=3.11\n  - pip:\n      - six\n"
    assert normalize_environment({"image": "python:3.11", "conda_file": text}).requirements == ("six",)
    with pytest.raises(SpecError, match="is a path"):
        normalize_environment({"image": "python:3.11", "conda_file": "./conda.yml"})


def test_docker_build_contexts_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="Docker context"):
        normalize_environment({"name": "e", "version": "1", "build": {"path": "./docker"}})


# --- curated environments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "AzureML-sklearn-1.5",
        "azureml:AzureML-sklearn-1.5@latest",
        "azureml:AzureML-sklearn-1.5:14",
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        "azureml://registries/azureml/environments/sklearn-1.5/versions/14",
        "azureml://registries/azureml/environments/sklearn-1.5",
        "azureml-sklearn-1.5",
    ],
)
def test_curated_sklearn_15_in_every_spelling(ref: str) -> None:
    spec = normalize_environment(ref)
    assert spec.kind == "venv"
    assert "scikit-learn==1.5.*" in spec.requirements
    assert "pandas<2" in spec.requirements  # the real image carries pandas 1.x
    assert "numpy<2" in spec.requirements
    assert not any(r.startswith("azureml-") for r in spec.requirements)
    assert spec.spec_hash() == normalize_environment("AzureML-sklearn-1.5").spec_hash()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", {"scikit-learn>=1.0,<1.2", "pandas<2", "numpy<1.24"}),
        ("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest", {"numpy<1.24"}),
        ("AzureML-lightgbm-3.3", {"lightgbm==3.3.*", "scikit-learn<1.6", "pandas<2", "numpy<2"}),
        ("AzureML-mlflow-ubuntu20.04-py38-cpu-inference", {"mlflow", "pandas<2"}),
        ("AzureML-pytorch-1.10-ubuntu18.04-py38-cuda11-gpu", {"torch>=1.10", "torchvision"}),
        ("AzureML-ACPT-pytorch-2.2-cuda12.1", {"torch==2.2.*"}),
        ("azureml:AzureML-tensorflow-2.7-ubuntu20.04-py38-cuda11-gpu@latest", {"tensorflow>=2.7"}),
        ("AzureML-tensorflow-2.16-cuda12", {"tensorflow==2.16.*"}),
    ],
)
def test_curated_requirement_sets(ref: str, expected: set[str]) -> None:
    spec = normalize_environment(ref)
    assert expected <= set(spec.requirements), spec.requirements


def test_curated_pytorch_is_a_cpu_build() -> None:
    assert normalize_environment("AzureML-ACPT-pytorch-2.2-cuda12.1").torch_backend == "cpu"


@pytest.mark.parametrize(
    "ref", ["AzureML-Minimal", "AzureML-minimal-ubuntu22.04-py39-cpu-inference", "azureml:AzureML-Minimal@latest"]
)
def test_minimal_curated_environments_are_the_host(ref: str) -> None:
    assert normalize_environment(ref).kind == "host"


def test_curated_image_maps_to_its_curated_set() -> None:
    spec = normalize_environment({"name": "e", "image": "mcr.microsoft.com/azureml/curated/sklearn-1.5:12"})
    assert "scikit-learn==1.5.*" in spec.requirements


def test_unknown_curated_name_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedError) as err:
        normalize_environment("azureml:AzureML-responsibleai-0.20-ubuntu20.04-py38-cpu@latest")
    message = str(err.value)
    assert "AzureML-responsibleai-0.20-ubuntu20.04-py38-cpu" in message
    for name in ("AzureML-sklearn-1.5", "AzureML-lightgbm-3.3", "AzureML-Minimal"):
        assert name in message
    assert err.value.details["known"] == known_curated_environments()


@pytest.mark.parametrize(
    "ref",
    ["azureml:my-env:1", "my-env@latest", "azureml://registries/team-registry/environments/my-env/versions/1"],
)
def test_workspace_and_foreign_registry_references_are_not_resolved_here(ref: str) -> None:
    with pytest.raises(UnsupportedError):
        normalize_environment(ref)


# --- python version constraints ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "ok"),
    [
        (None, True),
        ("==3.11.*", True),
        ("==3.11", False),
        ("==3.11.7", True),
        (">=3.8", True),
        (">=3.8,<3.11", False),
        ("<3.12", True),
        ("!=3.11.*", False),
        ("~=3.10", True),
        ("~=3.11.8", False),
        ("==3.1.*", False),
    ],
)
def test_python_constraints(constraint: str | None, ok: bool) -> None:
    assert satisfies((3, 11, 7), constraint) is ok
