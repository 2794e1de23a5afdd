"""EnvSpec: what an Azure ML environment means on this machine, in a form that hashes stably.

An environment is one of two things here (ARCHITECTURE.md §6):

* ``host``: the host Python, nothing to build. Any image without a conda file (``python:3.11``,
  ``mcr.microsoft.com/azureml/openmpi…``) and the minimal curated environments.
* ``venv``: a virtual environment built with uv from pip requirements. A ``conda_file`` is
  translated to pip terms (:mod:`shoal.envs.conda`) and a curated name maps to a requirement set
  (:mod:`shoal.envs.curated`).

Two specs that install the same thing hash equal, whatever the order, case or spacing of their
requirements; the hash names the cached environment directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shoal.envs import curated
from shoal.envs.conda import canonical_name, translate_conda
from shoal.errors import SpecError, UnsupportedError

# Part of every hash: bump it when the same spec should build differently (new uv flags, layout).
BUILDER_VERSION = 1

_REQ_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")


def normalize_requirement(req: str) -> str:
    """``PyYAML >= 6.0`` -> ``pyyaml>=6.0``: one spelling per requirement, so equal specs hash equal."""
    req = req.strip()
    # A URL or an environment marker has meaningful spaces; elsewhere spaces are noise.
    req = re.sub(r"\s+", " ", req) if ("@" in req or ";" in req) else re.sub(r"\s+", "", req)
    match = _REQ_NAME.match(req)
    if match is None:
        return req
    extras = match.group(2) or ""
    if extras:
        extras = "[" + ",".join(sorted(canonical_name(e.strip()) for e in extras[1:-1].split(",") if e.strip())) + "]"
    return canonical_name(match.group(1)) + extras + req[match.end() :]


@dataclass(frozen=True)
class EnvSpec:
    """A normalised environment. Build-relevant fields are hashed; ``source`` and ``notes`` are not."""

    requirements: tuple[str, ...] = ()
    python: str | None = None  # PEP 440 constraint on the interpreter, e.g. "==3.11.*"
    pip_options: tuple[str, ...] = ()  # index options for uv, in order
    torch_backend: str | None = None  # uv --torch-backend, e.g. "cpu"
    # What this came from, for logs: "image python:3.11", "curated AzureML-sklearn-1.5".
    source: str = field(default="", compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        reqs = tuple(sorted({normalize_requirement(r) for r in self.requirements if r and r.strip()}))
        object.__setattr__(self, "requirements", reqs)
        object.__setattr__(self, "pip_options", tuple(self.pip_options))
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.python is not None:
            object.__setattr__(self, "python", re.sub(r"\s+", "", self.python) or None)

    @property
    def kind(self) -> Literal["host", "venv"]:
        return "venv" if self.requirements or self.python else "host"

    def hashed_fields(self) -> dict[str, Any]:
        return {
            "builder_version": BUILDER_VERSION,
            "kind": self.kind,
            "python": self.python,
            "requirements": list(self.requirements),
            "pip_options": list(self.pip_options),
            "torch_backend": self.torch_backend,
        }

    def spec_hash(self) -> str:
        """sha256 (hex) of the normalised spec; names the environment's cache directory."""
        canonical = json.dumps(self.hashed_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {**self.hashed_fields(), "source": self.source, "notes": list(self.notes)}

    # --- constructors ----------------------------------------------------------------------------

    @classmethod
    def host(cls, source: str = "host", notes: Iterable[str] = ()) -> EnvSpec:
        return cls(source=source, notes=tuple(notes))

    @classmethod
    def from_curated(cls, env: curated.Curated, source: str | None = None) -> EnvSpec:
        notes = [env.note] if env.note else []
        return cls(
            requirements=env.requirements,
            torch_backend=env.torch_backend,
            source=source or f"curated {env.name}",
            notes=notes,
        )

    @classmethod
    def from_reference(cls, ref: str) -> EnvSpec:
        """A curated environment reference in any of its spellings (``AzureML-sklearn-1.5``, ``azureml:…@latest``,
        ``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``)."""
        name = curated.curated_name(ref)
        if name is None:
            raise UnsupportedError(
                f"environment reference '{ref}' names a workspace environment, not a curated one; "
                "resolve it to its stored body first",
                details={"reference": ref},
            )
        env = curated.lookup(name)
        return cls.from_curated(env, source=f"curated {env.name}" + (f" ({ref})" if ref != env.name else ""))

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> EnvSpec:
        """An environment as the server stores it: ``image``, ``conda_file`` (inline mapping), ``build``."""
        label = _label(body)
        build = body.get("build")
        if build:
            path = build.get("path") if isinstance(build, Mapping) else build
            raise UnsupportedError(
                f"environment {label} is built from a Docker context ({path}); Shoal runs jobs without Docker: "
                "describe it with an image and a conda_file instead",
                details={"environment": label},
            )
        image = str(body.get("image") or "")
        conda = body.get("conda_file")
        if conda is None:
            known = curated.from_image(image)
            if known is not None:
                return cls.from_curated(known, source=f"image {image} ({known.name})")
            return cls.host(f"image {image}" if image else label, ["no conda file: a clean venv of the host Python"])
        if isinstance(conda, str):
            conda = _parse_conda_text(conda, label)
        if not isinstance(conda, Mapping):
            raise SpecError(f"environment {label}: conda_file must be a conda environment mapping")
        out = translate_conda(conda)
        return cls(
            requirements=tuple(out.requirements),
            python=out.python,
            pip_options=tuple(out.pip_options),
            torch_backend=out.torch_backend,
            source=f"conda_file of environment {label}",
            notes=tuple(out.notes),
        )


def normalize_environment(env: Any) -> EnvSpec:
    """An EnvSpec from whatever a job carries: a reference string, a stored body, or an Environment entity."""
    if isinstance(env, EnvSpec):
        return env
    if isinstance(env, str):
        return EnvSpec.from_reference(env)
    if isinstance(env, Mapping):
        return EnvSpec.from_body(env)
    if hasattr(env, "model_dump"):
        return EnvSpec.from_body(env.model_dump(mode="json", exclude_none=True))
    raise SpecError(f"an environment must be a reference or an environment body, not {type(env).__name__}")


def _label(body: Mapping[str, Any]) -> str:
    name, version = body.get("name"), body.get("version")
    if name:
        return f"'{name}:{version}'" if version else f"'{name}'"
    return "(anonymous)"


def _parse_conda_text(text: str, label: str) -> Any:
    if "\n" not in text and not text.lstrip().startswith("{"):
        raise SpecError(
            f"environment {label}: conda_file '{text}' is a path; register the environment so its content is inlined"
        )
    # Only for this rare form (the server stores conda files as mappings); the bounded loader,
    # as the CLI's, so an alias bomb sent to the server fails in microseconds.
    from shoal.entities.yamlfile import parse_yaml_text

    return parse_yaml_text(text, f"environment {label}: conda_file")
