"""Permissions, and Azure ML's built-in workspace roles as sets of them.

Every route declares one :class:`Permission` (``server/auth.py``); a principal holds permissions
per workspace, from the roles assigned to its user there (roles combine, as in Azure: Data
Scientist + Compute Operator is self-service compute). The server's admins hold every permission
in every workspace.

What each role may do follows Azure's built-in roles (``how-to-assign-roles``):

- Owner: everything in the workspace, assigning roles in it and reading its audit records.
- Contributor: everything but assigning roles.
- Reader: read only; never datastore secrets (Azure's strict reading: list-secrets is an action).
- AzureML Data Scientist: everything in the workspace except creating, changing or deleting
  compute and changing the workspace itself; it may read datastore secrets (Azure: yes).
- AzureML Compute Operator: compute only (read, create, change, delete, start/stop), nothing else:
  no runs, models, datastores or jobs.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    # Reading datastore credentials back is its own permission (Azure: listSecrets action).
    SECRETS = "secrets"
    # Recording what a run does: MLflow writes, runner reports and logs, job outputs. Job tokens
    # hold this and READ only, so code in a job cannot submit jobs or change resources.
    TRACK = "track"
    # Computes: reading them (every role) and creating, changing, deleting or starting them.
    COMPUTE_READ = "compute-read"
    COMPUTE = "compute"
    # Changing the workspace's own settings (Azure: workspaces/write; Owner and Contributor).
    MANAGE = "manage"
    # Assigning roles in the workspace (Azure: Owner only).
    ROLES = "roles"
    # Reading the workspace's audit records (Owner; server admins read every workspace's).
    AUDIT = "audit"
    # Server-wide: users, tokens, audit, creating and deleting workspaces.
    ADMIN = "admin"
    # Any valid token: routes about the caller itself (who am I, my workspaces).
    SIGNED_IN = "signed-in"
    # Scoring an aml_token online endpoint with one's own token (Azure:
    # onlineEndpoints/score/action, held by Owner, Contributor and AzureML Data Scientist).
    SCORE = "score"


ALL_PERMISSIONS = frozenset(Permission)
# The server's own token file (``$SHOAL_HOME/token``) signs in as this name; no user may take it.
BOOTSTRAP_ADMIN = "admin"
P = Permission

OWNER = "Owner"
CONTRIBUTOR = "Contributor"
READER = "Reader"
DATA_SCIENTIST = "AzureML Data Scientist"
COMPUTE_OPERATOR = "AzureML Compute Operator"

ROLES: dict[str, frozenset[Permission]] = {
    OWNER: frozenset(
        {P.READ, P.WRITE, P.SECRETS, P.TRACK, P.COMPUTE_READ, P.COMPUTE, P.MANAGE, P.ROLES, P.AUDIT, P.SCORE}
    ),
    CONTRIBUTOR: frozenset({P.READ, P.WRITE, P.SECRETS, P.TRACK, P.COMPUTE_READ, P.COMPUTE, P.MANAGE, P.SCORE}),
    READER: frozenset({P.READ, P.COMPUTE_READ}),
    DATA_SCIENTIST: frozenset({P.READ, P.WRITE, P.SECRETS, P.TRACK, P.COMPUTE_READ, P.SCORE}),
    COMPUTE_OPERATOR: frozenset({P.COMPUTE_READ, P.COMPUTE}),
}
# Short names the CLI and API accept as well (case-insensitive), as `az role assignment` users type them.
ALIASES = {
    "owner": OWNER,
    "contributor": CONTRIBUTOR,
    "reader": READER,
    "azureml data scientist": DATA_SCIENTIST,
    "data-scientist": DATA_SCIENTIST,
    "datascientist": DATA_SCIENTIST,
    "azureml compute operator": COMPUTE_OPERATOR,
    "compute-operator": COMPUTE_OPERATOR,
    "computeoperator": COMPUTE_OPERATOR,
}


def builtin_role(name: str) -> str | None:
    """The built-in role's Azure name, from that name or an alias; None when it is none of them."""
    return ALIASES.get(str(name).strip().lower())


def permissions_of(roles: list[str] | tuple[str, ...] | set[str]) -> frozenset[Permission]:
    out: set[Permission] = set()
    for role in roles:
        out |= ROLES.get(role, frozenset())
    return frozenset(out)
