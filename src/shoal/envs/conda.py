"""A conda environment file becomes a pip requirement list.

Shoal builds every environment with ``uv`` from PyPI, so each conda ``dependencies`` entry is
translated: conda's version syntax becomes PEP 440, conda-only package names become their PyPI
names, and native libraries that conda ships as packages (CUDA, MKL, OpenSSL, compilers...) are
dropped, because PyPI wheels bundle what they need. Every rewrite is recorded as a note for the
build log so that a surprising environment can be explained.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.envs import pyver
from shoal.errors import SpecError, UnsupportedError


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name: ``PyYAML`` and ``pyyaml`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


# conda name -> PyPI name, where they differ.
CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "py-lightgbm": "lightgbm",
    "matplotlib-base": "matplotlib",
    "numpy-base": "numpy",
    "tensorflow-gpu": "tensorflow",  # the PyPI tensorflow-gpu is an empty stub since 2.12
    "pytables": "tables",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "python-graphviz": "graphviz",
    "msgpack-python": "msgpack",
    "dask-core": "dask",
    "psycopg2": "psycopg2-binary",  # conda's is prebuilt; the PyPI sdist needs libpq headers
    "ruamel_yaml": "ruamel.yaml",
    "pyqt": "PyQt5",
}

# Conda packages of native libraries and tools: PyPI wheels vendor them, so they are dropped.
CONDA_ONLY: frozenset[str] = frozenset(
    """
    pip python conda mamba cpuonly
    ca-certificates openssl certifi-bundle
    cudatoolkit cudatoolkit-dev cudnn nccl cuda cuda-toolkit cuda-nvcc cutensor magma pytorch-cuda pytorch-mutex
    mkl mkl-service mkl_fft mkl_random mkl-include mkl-devel nomkl intel-openmp tbb tbb-devel
    blas libblas libcblas liblapack liblapacke openblas libopenblas
    libgcc libgcc-ng libgomp libstdcxx libstdcxx-ng libgfortran libgfortran-ng libgfortran5 ld_impl_linux-64
    gcc gxx gcc_linux-64 gxx_linux-64 gfortran make binutils
    zlib libzlib xz bzip2 lz4-c zstd snappy sqlite tk readline ncurses libffi libuuid libnsl libedit expat icu
    libiconv libxml2 libxcb jpeg libjpeg-turbo libpng libtiff libwebp freetype fontconfig
    qt qt-main graphviz arrow-cpp libarrow libprotobuf protobuf-cpp
    openmpi mpich nodejs git
    """.split()
)
_CONDA_ONLY_CANONICAL = frozenset(canonical_name(n) for n in CONDA_ONLY)
_CONDA_TO_PYPI_CANONICAL = {canonical_name(k): v for k, v in CONDA_TO_PYPI.items()}
_CONDA_ONLY_PREFIXES = ("_", "cuda-", "libcu", "libnv", "font-", "libllvm", "r-")

# Packages that only make sense on Azure and have a local stand-in (or none is needed).
_PIP_REWRITES: dict[str, str | None] = {
    # The plugin adds the azureml:// tracking scheme; Shoal serves plain MLflow over HTTP.
    # What scripts use from it is the mlflow package it pulls in.
    "azureml-mlflow": "mlflow-skinny",
}

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_CONDA_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)")  # conda names may start with '_' (_libgcc_mutex)
_AROUND_OPS = re.compile(r"\s*([=<>!~,|]+)\s*")
_BRACKET = re.compile(r"^(?P<name>[^\s\[]+)\[(?P<body>.*)\]$")
_BRACKET_VERSION = re.compile(r"""version\s*=\s*['"]?([^'",\]]+(?:,[^'",\]]+)*)['"]?""")
_OPS = ("==", ">=", "<=", "!=", "~=", ">", "<")


@dataclass
class CondaTranslation:
    requirements: list[str] = field(default_factory=list)
    python: str | None = None
    pip_options: list[str] = field(default_factory=list)
    torch_backend: str | None = None
    notes: list[str] = field(default_factory=list)


def translate_conda(conda: Mapping[str, Any]) -> CondaTranslation:
    """Translate an inline conda environment file (``channels``, ``dependencies``) to pip terms."""
    out = CondaTranslation()
    deps = conda.get("dependencies") or []
    if not isinstance(deps, list):
        raise SpecError("conda file: 'dependencies' must be a list")
    if conda.get("variables"):
        out.notes.append("conda 'variables' are not applied to the environment; set them on the job")
    pip_lists: list[list[Any]] = []
    for entry in deps:
        if isinstance(entry, Mapping):
            for key, value in entry.items():
                if key != "pip":
                    raise UnsupportedError(f"conda file: dependency section '{key}' is not supported (only 'pip')")
                if not isinstance(value, list):
                    raise SpecError("conda file: the 'pip' section must be a list of requirements")
                pip_lists.append(value)
        elif isinstance(entry, str | int | float):
            _conda_entry(str(entry), out)
        else:
            raise SpecError(f"conda file: dependency {entry!r} is neither a package spec nor a 'pip' section")
    for pip_list in pip_lists:
        _pip_entries(pip_list, out)
    _rewrite_azure_only(out)
    return out


# --- conda match specs -------------------------------------------------------------------------


def _conda_entry(entry: str, out: CondaTranslation) -> None:
    name, version = parse_match_spec(entry)
    key = canonical_name(name)
    if key == "python":
        if version:
            pyver.check_constraint(version)
        out.python = version
        return
    if key == "cpuonly":
        # conda's switch for CPU builds of pytorch: ask uv for PyTorch's CPU wheels instead.
        out.torch_backend = "cpu"
        out.notes.append("conda package 'cpuonly': torch is installed from PyTorch's CPU wheel index")
        return
    if key == "pip":
        return
    if key in _CONDA_ONLY_CANONICAL or name.lower().startswith(_CONDA_ONLY_PREFIXES):
        out.notes.append(f"conda package '{name}' dropped: a native library or tool that PyPI wheels bundle")
        return
    pypi = _CONDA_TO_PYPI_CANONICAL.get(key, name)
    if pypi != name:
        out.notes.append(f"conda package '{name}' installed as '{pypi}' from PyPI")
    out.requirements.append(f"{pypi}{version or ''}")


def parse_match_spec(entry: str) -> tuple[str, str | None]:
    """``conda-forge::numpy=1.26=py311_0`` -> ``("numpy", "==1.26")``; the version part is PEP 440 or None.

    Conda's ``=1.26`` is a prefix match (1.26.x), ``==1.26`` is exact, and with a build string
    (``=1.26.4=py311_0``) the version is exact; the build string itself means nothing on PyPI.
    """
    spec = _AROUND_OPS.sub(r"\1", entry.strip())
    if "::" in spec:
        spec = spec.split("::", 1)[1]
    bracket = _BRACKET.match(spec)
    if bracket:
        found = _BRACKET_VERSION.search(bracket.group("body"))
        name, rest = bracket.group("name"), (found.group(1) if found else "")
        return _split_name(name, rest, entry)
    parts = spec.split()
    if len(parts) > 1:
        # Space form: "numpy 1.26.*" or "numpy >=1.2 py311_0" (the third part is a build string).
        name, version = parts[0], parts[1]
        if not version.startswith(("=", ">", "<", "!", "~")):
            version = "==" + version
        return _split_name(name, version, entry)
    match = _CONDA_NAME.match(spec)
    if match is None:
        raise SpecError(f"conda file: dependency '{entry}' is not a package spec")
    return _split_name(match.group(1), spec[match.end() :], entry)


def _split_name(name: str, rest: str, entry: str) -> tuple[str, str | None]:
    rest = rest.strip().replace(" ", "")
    if not rest:
        return name, None
    if "|" in rest:
        raise UnsupportedError(f"conda file: '{entry}' uses '|' (or); pip version specifiers cannot express it")
    if rest.startswith("=") and not rest.startswith("=="):
        version, _, build = rest[1:].partition("=")
        return name, _pin(version, exact=bool(build), entry=entry)
    if rest.startswith("=="):
        version = rest[2:].partition("=")[0]
        return name, _pin(version, exact=True, entry=entry)
    if rest.startswith(_OPS):
        return name, ",".join(_clause(c, entry) for c in rest.split(","))
    if rest[0].isdigit():
        return name, _pin(rest, exact=not rest.endswith("*"), entry=entry)
    raise SpecError(f"conda file: dependency '{entry}' has a version part '{rest}' that is not understood")


def _clause(clause: str, entry: str) -> str:
    for op in _OPS:
        if clause.startswith(op):
            version = clause[len(op) :]
            if not version.endswith("*"):
                return clause
            base = version.rstrip("*").rstrip(".")
            # ==1.2* is a prefix match; >=1.2* means nothing more than >=1.2.
            return f"{op}{base}.*" if op in ("==", "!=") else f"{op}{base}"
    if clause and clause[0].isdigit():
        return _pin(clause, exact=not clause.endswith("*"), entry=entry)
    raise SpecError(f"conda file: dependency '{entry}' has a version clause '{clause}' that is not understood")


def _pin(version: str, *, exact: bool, entry: str) -> str:
    base = version.rstrip("*").rstrip(".")
    if not base or not base[0].isdigit():
        raise SpecError(f"conda file: dependency '{entry}' has a version '{version}' that is not understood")
    return f"=={base}" if exact and not version.endswith("*") else f"=={base}.*"


# --- the pip section -----------------------------------------------------------------------------

# pip options that change nothing for a fresh, isolated environment.
_HARMLESS_PIP_OPTIONS = ("--upgrade", "-U", "--no-cache-dir", "--quiet", "-q", "--verbose", "-v", "--user")


def _pip_entries(entries: list[Any], out: CondaTranslation) -> None:
    for raw in entries:
        line = str(raw).split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            _pip_option(line, out)
        else:
            out.requirements.append(line)


def _pip_option(line: str, out: CondaTranslation) -> None:
    option, _, value = line.partition(" ")
    if option.startswith("--") and "=" in option:
        option, _, value = line.partition("=")
    value = value.strip()
    if option in ("--index-url", "-i") and value:
        out.pip_options += ["--index-url", value]
    elif option == "--extra-index-url" and value:
        out.pip_options += ["--extra-index-url", value]
        # pip picks the best version across all indexes; uv's default stops at the first index that has the name.
        if "--index-strategy" not in out.pip_options:
            out.pip_options += ["--index-strategy", "unsafe-best-match"]
    elif option in ("--find-links", "-f") and value:
        out.pip_options += ["--find-links", value]
    elif option == "--pre":
        out.pip_options += ["--prerelease", "allow"]
    elif option in _HARMLESS_PIP_OPTIONS:
        out.notes.append(f"pip option '{line}' ignored: the environment is built fresh")
    else:
        raise UnsupportedError(
            f"conda file: pip option '{line}' is not supported in an environment spec "
            "(supported: --index-url, --extra-index-url, --find-links, --pre)"
        )


def _rewrite_azure_only(out: CondaTranslation) -> None:
    names = {canonical_name(m.group(1)) for r in out.requirements if (m := _NAME.match(r))}
    kept: list[str] = []
    for req in out.requirements:
        match = _NAME.match(req)
        key = canonical_name(match.group(1)) if match else ""
        if key in _PIP_REWRITES:
            stand_in = _PIP_REWRITES[key]
            # mlflow and mlflow-skinny install the same files: never let two versions overwrite each other.
            if stand_in is None or {"mlflow", canonical_name(stand_in)} & names:
                out.notes.append(f"'{req}' dropped: Azure-only, and not needed with Shoal")
                continue
            out.notes.append(f"'{req}' replaced by '{stand_in}': Shoal tracks with plain MLflow")
            req = stand_in
            names.add(canonical_name(stand_in))
        kept.append(req)
    out.requirements = kept
