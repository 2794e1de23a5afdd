"""The names each kind goes by at the edges: REST plural, SDK operation group, CLI noun.

Dependency-free so that string-level modules (``refs``) can use it; ``kinds.KindSpec`` reads
its names from here, and the server routes, ``MLClient`` and the CLI are built from those.
Every plural is written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindNames:
    name: str
    plural: str  # REST path segment, and the ARM id segment
    versioned: bool = False  # a versioned asset: REST routes /{plural}/{name}/versions/{version}
    sdk_group: str | None = None  # MLClient attribute (None: the SDK has no group)
    cli_noun: str | None = None  # `shoal <noun> …` (None: no CLI)

    @property
    def in_registry(self) -> bool:
        """True when ``azureml://registries/<r>/<plural>/…`` can name this kind."""
        return self.name in REGISTRY_KINDS


KIND_NAMES: dict[str, KindNames] = {
    names.name: names
    for names in (
        KindNames("workspace", "workspaces", sdk_group="workspaces", cli_noun="workspace"),
        KindNames("compute", "computes", sdk_group="compute", cli_noun="compute"),
        KindNames("datastore", "datastores", sdk_group="datastores", cli_noun="datastore"),
        KindNames("model", "models", versioned=True, sdk_group="models", cli_noun="model"),
        KindNames("data", "data", versioned=True, sdk_group="data", cli_noun="data"),
        KindNames("environment", "environments", versioned=True, sdk_group="environments", cli_noun="environment"),
        KindNames("component", "components", versioned=True, sdk_group="components", cli_noun="component"),
        KindNames("code", "codes", versioned=True, sdk_group="_code"),
        KindNames("job", "jobs", sdk_group="jobs", cli_noun="job"),
        KindNames("schedule", "schedules", sdk_group="schedules", cli_noun="schedule"),
        KindNames("connection", "connections", sdk_group="connections", cli_noun="connection"),
        KindNames("online_endpoint", "onlineEndpoints", sdk_group="online_endpoints", cli_noun="online-endpoint"),
        KindNames("online_deployment", "deployments", sdk_group="online_deployments", cli_noun="online-deployment"),
        KindNames("batch_endpoint", "batchEndpoints", sdk_group="batch_endpoints", cli_noun="batch-endpoint"),
        KindNames("batch_deployment", "batchDeployments", sdk_group="batch_deployments", cli_noun="batch-deployment"),
    )
}

# The versioned assets (model, data, environment, component, code), in table order.
VERSIONED_KINDS: tuple[str, ...] = tuple(kind for kind, names in KIND_NAMES.items() if names.versioned)

# The kinds a registry holds, in the order error messages list them.
REGISTRY_KINDS: tuple[str, ...] = ("model", "environment", "component", "data")

# REST plural → kind, for every kind an id can name.
PLURAL_KINDS: dict[str, str] = {names.plural: names.name for names in KIND_NAMES.values()}

# The plurals ``azureml://registries/<r>/<plural>/…`` accepts.
REGISTRY_PLURALS: tuple[str, ...] = tuple(KIND_NAMES[kind].plural for kind in REGISTRY_KINDS)
