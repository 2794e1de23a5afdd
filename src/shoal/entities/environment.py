"""Environment asset (``_schema/assets/environment.py``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, model_validator

from shoal.entities.base import Asset, ShoalModel
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.entities.validation import FieldIssue
from shoal.entities.yamlfile import load_yaml
from shoal.errors import SpecError


class BuildContext(ShoalModel):
    """A docker build context: a local folder or an http URL, plus the Dockerfile within it."""

    path: str
    dockerfile_path: str = "Dockerfile"


class Route(ShoalModel):
    port: int
    path: str


class InferenceConfig(ShoalModel):
    """Routes of a custom serving container (BYOC)."""

    liveness_route: Route | None = None
    readiness_route: Route | None = None
    scoring_route: Route | None = None


def _conda_file(value: Any) -> Any:
    if value is None or isinstance(value, str | Mapping):
        return value
    raise ValueError("must be a path to a conda YAML file or an inline conda mapping")


CondaFile = Annotated[str | dict[str, Any], BeforeValidator(_conda_file)]


class Environment(Asset):
    KIND: ClassVar[str] = "environment"

    image: str | None = None
    conda_file: CondaFile | None = None
    build: BuildContext | None = None
    os_type: Literal["linux", "windows"] = "linux"
    inference_config: InferenceConfig | None = None
    datastore: str | None = None

    def __init__(self, /, **data: Any) -> None:
        # azure-ai-ml reads a conda file when the object is made (relative to the working
        # folder), so Environment(conda_file="./conda.yaml") travels with its content, as a
        # YAML-loaded environment does. YAML and server bodies do not come through here.
        conda = data.get("conda_file")
        if isinstance(conda, os.PathLike) or (isinstance(conda, str) and conda.strip() and is_local_path(conda)):
            data["conda_file"] = read_conda_file(conda)
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _not_a_conda_file(cls, data: Any) -> Any:
        # A common mistake: passing the conda YAML where the environment YAML belongs.
        if isinstance(data, Mapping):
            for key in ("channels", "dependencies"):
                if key in data:
                    raise FieldIssue(
                        key,
                        f"'{key}' belongs in a conda file, not in an environment spec; "
                        "this looks like a conda file: reference it with conda_file (or --conda-file)",
                    )
        return data

    @model_validator(mode="after")
    def _image_xor_build(self) -> Self:
        if self.image and self.build:
            raise FieldIssue("build", "give exactly one of 'image' or 'build', not both")
        if not self.image and not self.build:
            raise FieldIssue("image", "an environment needs 'image' or 'build'", missing=True)
        if self.conda_file is not None and self.build:
            raise FieldIssue(
                "conda_file",
                "conda_file can only be used with 'image'; with 'build', install it in the Dockerfile",
            )
        return self


def read_conda_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A local conda YAML (``file:`` prefix and ``~`` allowed) read through the bounded loader."""
    text = os.fspath(path)
    local = Path(os.path.expanduser(strip_file_prefix(text)))
    if not local.is_file():
        where = f" (from {Path.cwd()})" if not local.is_absolute() else ""
        raise SpecError(f"environment conda_file {text!r}: no such file{where}", details={"field": "conda_file"})
    data, _ = load_yaml(local)
    return data
