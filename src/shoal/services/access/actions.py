"""Azure-style actions: what a request does, as Azure RBAC names it, and custom roles that allow
or deny actions by pattern.

Azure lets an admin define a role from ``actions`` and ``not_actions``, patterns over operation
names such as ``Microsoft.MachineLearningServices/workspaces/jobs/write`` where ``*`` matches
anything (``Microsoft.MachineLearningServices/workspaces/*/read`` reads everything). A custom
role allows an action when some ``actions`` pattern matches it and no ``not_actions`` pattern
does (Azure's NotActions subtract from Actions; they are not a deny assignment).

Each request's action comes from its route (:func:`route_action`): the resource type is the
route's first segment after the workspace (``jobs``, ``models``, ``datastores``, ``computes``,
``onlineEndpoints/deployments``…; MLflow's routes are ``experiments`` for tracking and
``models`` for its registry), and the verb from the route's permission and method: ``read``,
``write``, ``delete``, ``<verb>/action`` for a POST that acts (``jobs/cancel/action``,
``computes/start/action``) and ``listsecrets/action`` for reading credentials back. The
workspace itself is ``workspaces/read`` and ``workspaces/write``.

What a custom role can never grant, whatever its patterns: assigning roles, reading the audit
log, and everything server-wide (users, workspaces, ``local`` datastores); those stay with
Owner and the server's admins, so a custom role cannot be a way to hand out more than roles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from shoal.errors import UserError
from shoal.services.access.roles import ALIASES, Permission

NAMESPACE = "Microsoft.MachineLearningServices"
P = Permission
# The permissions a custom role's actions can stand for.
CUSTOMIZABLE = frozenset({P.READ, P.WRITE, P.SECRETS, P.TRACK, P.COMPUTE_READ, P.COMPUTE, P.MANAGE})
# Route templates as the router holds them (without the app's ``/api/v1``) or in full.
WORKSPACE_PREFIX = "/workspaces/{workspace}"
API_PREFIX = "/api/v1"
# MLflow's resources, by the segment after ``api/2.0/mlflow/`` (or ``mlflow-artifacts``).
MLFLOW_KINDS = {"registered-models": "models", "model-versions": "models"}
# POSTs whose last segment is a verb: Azure names them ``<type>/<verb>/action``.
ACTION_VERBS = frozenset(
    {"cancel", "archive", "restore", "enable", "disable", "trigger", "start", "stop", "restart", "regeneratekeys"}
)
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()-]{0,63}$")
PATTERN = re.compile(r"^[A-Za-z0-9.*/_-]{1,200}$")
MAX_PATTERNS = 100


def _mlflow_kind(segments: list[str]) -> str:
    for i, seg in enumerate(segments):
        if seg == "mlflow-artifacts":
            return "experiments"
        if seg == "mlflow" and i > 0 and i + 1 < len(segments):
            return MLFLOW_KINDS.get(segments[i + 1], "experiments")
    return "experiments"


def route_action(template: str, method: str, permission: Permission, params: Mapping[str, Any]) -> str | None:
    """The Azure action a request to the route ``template`` does; None where no custom role may
    grant it (routes outside a workspace, role assignments, audit, admin routes)."""
    template = template.removeprefix(API_PREFIX)
    if permission not in CUSTOMIZABLE or not template.startswith(WORKSPACE_PREFIX):
        return None
    rest = [s for s in template[len(WORKSPACE_PREFIX) :].split("/") if s]
    if not rest:
        verb = "read" if permission == P.READ else "delete" if method == "DELETE" else "write"
        return f"{NAMESPACE}/workspaces/{verb}"
    if rest[0] == "mlflow":
        kind = _mlflow_kind(rest)
        last = rest[-1]
        if permission == P.READ:
            verb = "read"
        elif method == "DELETE" or last in ("delete", "delete-tag"):
            verb = "delete"
        else:
            verb = "write"
        return f"{NAMESPACE}/workspaces/{kind}/{verb}"
    kind = rest[0]
    if "deployments" in rest[1:]:
        kind += "/deployments"
    literal = [params.get(s[1:-1].split(":")[0], "") if s.startswith("{") else s for s in rest]
    last = str(literal[-1])
    if permission == P.SECRETS:
        verb = "listsecrets/action"
    elif permission in (P.READ, P.COMPUTE_READ):
        verb = "read"
    elif method == "DELETE":
        verb = "delete"
    elif method == "POST" and len(rest) > 1 and last.lower() in ACTION_VERBS:
        verb = f"{last}/action"
    else:
        verb = "write"
    return f"{NAMESPACE}/workspaces/{kind}/{verb}"


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = ["(?:" + ".*".join(re.escape(piece) for piece in p.split("*")) + ")" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


@dataclass(frozen=True)
class CustomRole:
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    description: str = ""

    @cached_property
    def _allow(self) -> re.Pattern[str] | None:
        return _compile(self.actions)

    @cached_property
    def _deny(self) -> re.Pattern[str] | None:
        return _compile(self.not_actions)

    def allows(self, action: str | None) -> bool:
        if action is None or self._allow is None or not self._allow.fullmatch(action):
            return False
        return self._deny is None or not self._deny.fullmatch(action)

    def job_permissions(self) -> frozenset[Permission]:
        """What a job submitted by a holder of only this role may do with its job token (narrowed
        to its job, as always): a role that submits jobs (``jobs/write``) gives its jobs what a job
        needs to run and report (read, track); otherwise read where it allows ``jobs/read`` and
        track where it allows ``experiments/write``."""
        if self.allows(f"{NAMESPACE}/workspaces/jobs/write"):
            return frozenset({P.READ, P.TRACK})
        held = set()
        if self.allows(f"{NAMESPACE}/workspaces/jobs/read"):
            held.add(P.READ)
        if self.allows(f"{NAMESPACE}/workspaces/experiments/write"):
            held.add(P.TRACK)
        return frozenset(held)


def _patterns(spec: Mapping[str, Any], key: str, required: bool) -> tuple[str, ...]:
    value = spec.get(key)
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{key} must be a list of action patterns such as '{NAMESPACE}/workspaces/jobs/*'")
    if required and not value:
        raise UserError(f"{key} must list at least one action, such as '{NAMESPACE}/workspaces/*/read'")
    if len(value) > MAX_PATTERNS:
        raise UserError(f"{key} may list at most {MAX_PATTERNS} patterns, got {len(value)}")
    for pattern in value:
        if not PATTERN.match(pattern):
            raise UserError(f"{key}: invalid action pattern {pattern[:80]!r}: up to 200 letters, digits and . * / _ -")
        if pattern != "*" and not pattern.lower().startswith(NAMESPACE.lower() + "/"):
            raise UserError(
                f"{key}: the action {pattern[:80]!r} is not a Machine Learning action: patterns start with "
                f"'{NAMESPACE}/' (or are '*')"
            )
    return tuple(dict.fromkeys(value))


def parse_definition(name: str, spec: Mapping[str, Any]) -> CustomRole:
    """A custom role from its body: ``actions``, ``not_actions``, ``description`` (Azure's
    ``Actions``/``NotActions``/``Description`` spellings as well)."""
    if not ROLE_NAME.match(name or ""):
        raise UserError(
            f"invalid role name {str(name)[:80]!r}: 1-64 letters, digits, spaces and _ . ( ) -, "
            "starting with a letter or digit"
        )
    if name.strip().lower() in ALIASES:
        raise UserError(f"{name!r} is a built-in role; choose another name for a custom role")
    spellings = {"Actions": "actions", "NotActions": "not_actions", "Description": "description", "Name": "name"}
    body = {spellings.get(k, k): v for k, v in spec.items()}
    unknown = set(body) - {"name", "actions", "not_actions", "description", "assignable_scopes", "AssignableScopes"}
    if unknown:
        raise UserError(f"unknown role fields: {', '.join(sorted(unknown))} (actions, not_actions, description)")
    if body.get("name") not in (None, name):
        raise UserError(f"the body names the role {body['name']!r}, the URL {name!r}")
    description = body.get("description") or ""
    if not isinstance(description, str) or len(description) > 1024:
        raise UserError("description must be text of at most 1024 characters")
    return CustomRole(name, _patterns(body, "actions", True), _patterns(body, "not_actions", False), description)
