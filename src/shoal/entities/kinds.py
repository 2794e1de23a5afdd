"""The table of entity kinds, and kind-level operations: parse, secrets, ``$schema`` lookup."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from shoal.entities.base import Entity
from shoal.entities.kind_names import KIND_NAMES, KindNames
from shoal.entities.validation import single_issue
from shoal.errors import SpecError

_DATASTORE_SECRETS = tuple(
    f"credentials.{key}"
    for key in (
        "account_key",
        "sas_token",
        "connection_string",
        "client_secret",
        "certificate",
        "secret_access_key",
        "kerberos_password",
        "kerberos_keytab",
    )
)

# The secret fields of connection credentials (entities/connection.py's CONNECTION_SECRET_FIELDS,
# written out so the table imports no entity module; a test checks the two agree).
_CONNECTION_SECRETS = tuple(
    f"credentials.{key}"
    for key in ("pat", "password", "key", "secret_access_key", "sas_token", "client_secret", "account_key")
)


@dataclass(frozen=True)
class KindSpec:
    """A kind Shoal loads: where its entity classes live, plus its edge names (plural, SDK group,
    CLI noun) from :data:`~shoal.entities.kind_names.KIND_NAMES`.

    ``classes`` is ``"module:name"``, naming one entity class or a tuple of them (typed kinds).
    They are imported the first time the kind is used: a CLI call that reads models builds only the
    model's pydantic schema, not the job's (about 150 ms of start-up, issue #15)."""

    name: str
    classes: str
    default_type: str | None = None  # used when a multi-type kind's spec has no `type`
    secret_paths: tuple[str, ...] = ()
    names: KindNames = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", KIND_NAMES[self.name])

    @cached_property
    def entity_types(self) -> tuple[type[Entity], ...]:
        module, _, attr = self.classes.partition(":")
        found = getattr(importlib.import_module(module), attr)
        return tuple(found) if isinstance(found, tuple | list) else (found,)

    @cached_property
    def adapter(self) -> TypeAdapter:
        if len(self.entity_types) == 1:
            return TypeAdapter(self.entity_types[0])
        union = Union[self.entity_types]  # noqa: UP007 - a runtime tuple of classes
        return TypeAdapter(Annotated[union, Field(discriminator="type")])

    @property
    def plural(self) -> str:
        """The REST path segment (``models``, ``data``, ``computes``…)."""
        return self.names.plural

    @property
    def versioned(self) -> bool:
        """A versioned asset, served by the asset routes (``/{plural}/{name}/versions/{version}``)."""
        return self.names.versioned

    @property
    def sdk_group(self) -> str | None:
        """The ``MLClient`` attribute that holds this kind's operations."""
        return self.names.sdk_group

    @property
    def cli_noun(self) -> str | None:
        """``shoal <noun> …``; None where the CLI has no noun for the kind."""
        return self.names.cli_noun

    @property
    def in_registry(self) -> bool:
        """True when a registry can hold this kind."""
        return self.names.in_registry

    @property
    def typed(self) -> bool:
        """True when ``type`` selects the entity class (compute, datastore, component)."""
        return len(self.entity_types) > 1

    @property
    def types(self) -> dict[str, type[Entity]]:
        """``type`` value → class, for typed kinds."""
        return {cls.model_fields["type"].default: cls for cls in self.entity_types} if self.typed else {}


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("workspace", "shoal.entities.workspace:Workspace"),
        KindSpec("compute", "shoal.entities.compute:COMPUTE_TYPES", secret_paths=("ssh_settings.admin_password",)),
        KindSpec("datastore", "shoal.entities.datastore:DATASTORE_TYPES", secret_paths=_DATASTORE_SECRETS),
        KindSpec("model", "shoal.entities.model:Model"),
        KindSpec("data", "shoal.entities.data:Data"),
        KindSpec("environment", "shoal.entities.environment:Environment"),
        KindSpec("component", "shoal.entities.component:COMPONENT_TYPES", default_type="command"),
        KindSpec("code", "shoal.entities.code:Code"),
        KindSpec("job", "shoal.entities.job:JOB_TYPES", default_type="command"),
        KindSpec("schedule", "shoal.entities.schedule:JobSchedule"),
        KindSpec("connection", "shoal.entities.connection:WorkspaceConnection", secret_paths=_CONNECTION_SECRETS),
        KindSpec("online_endpoint", "shoal.entities.endpoint:ManagedOnlineEndpoint"),
        KindSpec("online_deployment", "shoal.entities.endpoint:ManagedOnlineDeployment"),
        KindSpec("batch_endpoint", "shoal.entities.batch_endpoint:BatchEndpoint"),
        KindSpec("batch_deployment", "shoal.entities.batch_endpoint:BATCH_DEPLOYMENT_TYPES", default_type="model"),
    )
}

KIND_BY_PLURAL: dict[str, str] = {spec.plural: spec.name for spec in KINDS.values()}


def get_kind(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise SpecError(f"unknown entity kind {kind!r}; known kinds: {', '.join(KINDS)}") from None


def entity_class(
    kind: str, data: Mapping[str, Any], *, source: str | None = None, line_map: Any = None
) -> type[Entity]:
    """The class that validates ``data`` (chosen by ``type`` for compute/datastore/component)."""
    spec = get_kind(kind)
    if not spec.typed:
        return spec.entity_types[0]
    type_name = data.get("type", spec.default_type)
    allowed = ", ".join(spec.types)
    if type_name is None:
        raise single_issue(
            "type",
            f"a {kind} needs a type; one of: {allowed}",
            source=source,
            line_map=line_map,
            kind=kind,
            issue_type="missing",
        )
    if not isinstance(type_name, str) or type_name not in spec.types:
        raise single_issue(
            "type",
            f"unknown {kind} type {type_name!r}; allowed types: {allowed}",
            source=source,
            line_map=line_map,
            kind=kind,
        )
    return spec.types[type_name]


def parse_entity(kind: str, data: Mapping[str, Any], *, source: str | None = None, line_map: Any = None) -> Entity:
    """Validate a spec dict into its entity; errors are SpecErrors naming file, line and field."""
    get_kind(kind)
    if not isinstance(data, Mapping):
        where = f"{source}: " if source else ""
        raise SpecError(f"{where}a {kind} spec must be a mapping, got {type(data).__name__}")
    cls = entity_class(kind, data, source=source, line_map=line_map)
    return cls.from_dict(data, source=source, line_map=line_map)


# --- secrets ---------------------------------------------------------------------------------


def _pop_path(data: dict[str, Any], parts: list[str]) -> tuple[bool, Any]:
    current: Any = data
    for part in parts[:-1]:
        if not isinstance(current, dict) or not isinstance(current.get(part), dict):
            return False, None
        current = current[part]
    if isinstance(current, dict) and parts[-1] in current:
        return True, current.pop(parts[-1])
    return False, None


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> None:
    current = data
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


def split_secrets(kind: str, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(public, secrets)``: secrets are moved (nested like ``data``) out of a copy of ``data``."""
    spec = get_kind(kind)
    public = copy.deepcopy(dict(data))
    secrets: dict[str, Any] = {}
    for path in spec.secret_paths:
        parts = path.split(".")
        found, value = _pop_path(public, parts)
        if found and value is not None:
            _set_path(secrets, parts, value)
    return public, secrets


def _deep_merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def merge_secrets(kind: str, public: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_secrets`."""
    get_kind(kind)
    merged = copy.deepcopy(dict(public))
    _deep_merge(merged, secrets)
    return merged


def redact(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` without its secret values (for logs and listings)."""
    return split_secrets(kind, data)[0]


# --- $schema → kind --------------------------------------------------------------------------

# Keyed by the lower-cased file stem of the schema URL. Kinds not in KINDS (endpoints, schedules...)
# are listed too so that a loader can say what a file is even where this package can't load it.
_SCHEMA_KINDS: dict[str, str] = {
    "workspace": "workspace",
    "workspacehub": "workspace",
    "featurestore": "workspace",
    "amlcompute": "compute",
    "computeinstance": "compute",
    "vmcompute": "compute",
    "kubernetescompute": "compute",
    "synapsesparkcompute": "compute",
    "azureblob": "datastore",
    "azurefile": "datastore",
    "azuredatalakegen1": "datastore",
    "azuredatalakegen2": "datastore",
    "onelake": "datastore",
    "hdfs": "datastore",
    "model": "model",
    "data": "data",
    "dataimport": "data",
    "environment": "environment",
    "code": "code",
    "commandcomponent": "component",
    "pipelinecomponent": "component",
    "parallelcomponent": "component",
    "sparkcomponent": "component",
    "commandjob": "job",
    "sweepjob": "job",
    "pipelinejob": "job",
    "sparkjob": "job",
    "parallel": "job",
    "managedonlineendpoint": "online_endpoint",
    "kubernetesonlineendpoint": "online_endpoint",
    "managedonlinedeployment": "online_deployment",
    "kubernetesonlinedeployment": "online_deployment",
    "batchendpoint": "batch_endpoint",
    "batchdeployment": "batch_deployment",
    "modelbatchdeployment": "batch_deployment",
    "pipelinecomponentbatchdeployment": "batch_deployment",
    "schedule": "schedule",
    "registry": "registry",
    "connection": "connection",
    "workspaceconnection": "connection",
    "mltable": "mltable",
}


def kind_of_schema(schema_url: Any) -> str | None:
    """``.../latest/model.schema.json`` → ``"model"``; None when unknown or absent.

    May return kinds this package does not load (``schedule``, ``online_endpoint``...); check ``KINDS``.
    """
    if not isinstance(schema_url, str) or not schema_url.strip():
        return None
    stem = schema_url.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".schema.json", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return _SCHEMA_KINDS.get(stem)
