"""The environment of a no-code MLflow deployment, derived from the model as Azure does.

An MLflow model names its environment: ``MLmodel``'s ``python_function.env`` points at a
``conda.yaml`` (and a ``python_env.yaml`` with a ``requirements.txt``). Shoal reads the conda file
(else the requirements file) through the bounded YAML loader, swaps ``mlflow`` for
``mlflow-skinny`` of the same version (the scoring script needs only ``mlflow.pyfunc``; the full
package brings the tracking server and UI), and hands it to the same builder as every other
environment: built once, cached by its content."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shoal.entities.yamlfile import parse_yaml_text
from shoal.errors import UserError

MAX_ENV_FILE = 256 * 1024  # a conda or requirements file; real ones are a few hundred bytes
_MLFLOW = re.compile(r"^mlflow(?=\s*([=<>!~\[;]|$))", re.IGNORECASE)


def model_folder(root: Path) -> Path:
    """The folder holding ``MLmodel``: ``root`` or one at most two levels under it."""
    if (root / "MLmodel").is_file():
        return root
    for depth in ("*", "*/*"):
        found = sorted(p.parent for p in root.glob(f"{depth}/MLmodel") if p.is_file())
        if found:
            return found[0]
    raise UserError("the model has no MLmodel file: a deployment without code_configuration needs an MLflow model")


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_ENV_FILE:
        raise UserError(f"the model's {path.name} is over {MAX_ENV_FILE // 1024} KB")
    return path.read_text(encoding="utf-8", errors="replace")


def _skinny(requirement: Any) -> Any:
    return _MLFLOW.sub("mlflow-skinny", requirement.strip()) if isinstance(requirement, str) else requirement


def environment_of(model_dir: Path) -> dict[str, Any]:
    """An environment body (``image`` + inline ``conda_file``) for the MLflow model under ``model_dir``."""
    folder = model_folder(model_dir)
    conda_path, requirements_path = folder / "conda.yaml", folder / "requirements.txt"
    if conda_path.is_file():
        conda = parse_yaml_text(_read(conda_path), "the model's conda.yaml")
        deps = []
        for dep in conda.get("dependencies") or []:
            if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
                dep = {**dep, "pip": [_skinny(r) for r in dep["pip"]]}
            deps.append(dep)
        conda = {**conda, "dependencies": deps}
    elif requirements_path.is_file():
        lines = [line.strip() for line in _read(requirements_path).splitlines()]
        pip = [_skinny(line) for line in lines if line and not line.startswith("#")]
        conda = {"name": "mlflow-env", "dependencies": [{"pip": pip}]}
    else:
        raise UserError(
            "the MLflow model has neither conda.yaml nor requirements.txt: give the deployment an environment"
        )
    pip_deps = [r for d in conda["dependencies"] if isinstance(d, dict) for r in d.get("pip") or []]
    if not any(isinstance(r, str) and r.lower().startswith("mlflow") for r in pip_deps):
        # The scoring script loads the model with mlflow.pyfunc: it must be there.
        conda["dependencies"] = [*conda["dependencies"], {"pip": ["mlflow-skinny"]}]
    return {"image": "python:3.11", "conda_file": conda}
