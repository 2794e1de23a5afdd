"""``shoal user|role|audit …``: who may use a team server, with which role, and what they did.

Users sign in with API tokens (no passwords). The first admin is the server's own token
(``$SHOAL_HOME/token``, or ``SHOAL_TOKEN`` for a remote server); it creates the users."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli.common import MaxResultsOpt, OutputOpt, QueryOpt, WorkspaceOpt, client, show
from shoal.cli.examples import epilog
from shoal.cli.output import OutputFormat
from shoal.errors import UserError

UserArg = Annotated[str, typer.Option("--name", "-n", help="User name.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
USER_COLUMNS = ["name", "display_name", "admin", "created_by", "created_at"]
TOKEN_COLUMNS = ["id", "name", "state", "created_at", "expires_at", "revoked_at"]


def _access(workspace: str | None = None) -> Any:
    return client(workspace).access


def _me_or(user: str | None) -> str:
    """``--user``, or the signed-in user (the server's admin token is no user: it must name one)."""
    if user:
        return user
    me = _access().whoami()
    if me.get("kind") != "user":
        raise UserError(f"this token is {me.get('name')!r}, not a user: give --user")
    return str(me["name"])


# -- user -----------------------------------------------------------------------------------

user_app = typer.Typer(help="Manage the users of a Shoal server and their API tokens (admin).", no_args_is_help=True)


@user_app.command(
    "create", epilog=epilog(["shoal user create -n alice", "shoal user create -n bob --display-name 'Bob' --admin"])
)
def user_create(
    name: UserArg,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Full name.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="A server admin: every right in every workspace.")] = False,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Create a user. It can do nothing until it has a role in a workspace (`shoal role assignment
    create`) and a token to sign in with (`shoal user token create`)."""
    show(_access().create_user(name, display_name=display_name, admin=admin), output, query)


@user_app.command("list", epilog=epilog(["shoal user list -o table", "shoal user list --query '[].name' -o tsv"]))
def user_list(output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """List users."""
    show(_access().list_users(), output, query, columns=USER_COLUMNS)


@user_app.command("show", epilog=epilog(["shoal user show -n alice", "shoal user show -n alice --query roles"]))
def user_show(name: UserArg, output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """Show a user, its roles by workspace and its tokens (never the tokens themselves)."""
    show(_access().get_user(name), output, query)


@user_app.command("delete", epilog=epilog(["shoal user delete -n alice --yes"]))
def user_delete(name: UserArg, yes: YesOpt = False) -> None:
    """Delete a user with its tokens and role assignments (its audit records stay)."""
    if not yes and not typer.confirm(f"Delete user '{name}' and its tokens?", default=False):
        raise typer.Abort()
    _access().delete_user(name)


token_app = typer.Typer(help="API tokens of a user: create, list, revoke.", no_args_is_help=True)
user_app.add_typer(token_app, name="token")
TokenUserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="Whose tokens (default: the signed-in user; an admin: anyone's).")
]


@token_app.command(
    "create",
    epilog=epilog(
        [
            "shoal user token create -u alice --name laptop --expires-in-days 30",
            "export SHOAL_TOKEN=$(shoal user token create -u alice --query token -o tsv)",
        ]
    ),
)
def token_create(
    user: TokenUserOpt = None,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
    expires_in_days: Annotated[
        int, typer.Option("--expires-in-days", help="Days until it stops working (1-3650); 0: never.")
    ] = 90,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Create an API token. The token is printed this once: the server keeps only its hash."""
    days = expires_in_days if expires_in_days != 0 else None
    show(_access().create_token(_me_or(user), name=name, expires_in_days=days), output, query)


@token_app.command("list", epilog=epilog(["shoal user token list -u alice -o table"]))
def token_list(user: TokenUserOpt = None, output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """List a user's tokens: id, name, state (active, expired, revoked) and times."""
    show(_access().list_tokens(_me_or(user)), output, query, columns=TOKEN_COLUMNS)


@token_app.command("revoke", epilog=epilog(["shoal user token revoke -u alice --id t-0123456789ab"]))
def token_revoke(
    token_id: Annotated[str, typer.Option("--id", help="The token's id (from `shoal user token list`).")],
    user: TokenUserOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Revoke a token: the next request that carries it is refused (401)."""
    show(_access().revoke_token(_me_or(user), token_id), output, query)


# -- role -----------------------------------------------------------------------------------

role_app = typer.Typer(
    help="Workspace roles (Azure's built-in roles and custom ones) and their assignments.", no_args_is_help=True
)
assignment_app = typer.Typer(help="Who holds which role in a workspace (as `az role assignment`).")
role_app.add_typer(assignment_app, name="assignment")
AssigneeOpt = Annotated[str, typer.Option("--assignee", help="User name.")]


def _role_row(role: dict[str, Any]) -> dict[str, Any]:
    grants = role.get("permissions") or role.get("actions") or []
    denies = role.get("not_actions") or []
    text = ", ".join(grants) + (f"; not {', '.join(denies)}" if denies else "")
    return {"name": role["name"], "type": role.get("type", "built-in"), "grants": text}


@role_app.command("list", epilog=epilog(["shoal role list -o table", "shoal role list --query \"[?type=='custom']\""]))
def role_list(output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """List the roles: the built-in ones with the permissions each holds, the custom ones with their
    actions."""
    roles = _access().list_roles()
    if output == OutputFormat.table or output == OutputFormat.tsv:
        roles = [_role_row(r) for r in roles]
    show(roles, output, query, columns=["name", "type", "grants"])


RoleNameOpt = Annotated[str, typer.Option("--name", "-n", help="The role's name.")]


def _definition(path: str) -> dict[str, Any]:
    """An Azure role definition file (``az role definition create --role-definition``): JSON with
    Name, Description, Actions, NotActions (the lower-case spellings too)."""
    import json
    from pathlib import Path

    text = path if path.lstrip().startswith("{") else Path(path).read_text(encoding="utf-8")
    if len(text) > 1_000_000:
        raise UserError(f"role definition {path!r} is over 1 MB")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"role definition {path!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"role definition {path!r} must be a JSON object")
    return data


@role_app.command(
    "create",
    epilog=epilog(
        [
            "shoal role create -n 'Job Runner' --action 'Microsoft.MachineLearningServices/workspaces/*/read' "
            "--action 'Microsoft.MachineLearningServices/workspaces/jobs/*' "
            "--action 'Microsoft.MachineLearningServices/workspaces/experiments/*'",
            "shoal role create -n 'No Compute' --action '*' "
            "--not-action 'Microsoft.MachineLearningServices/workspaces/computes/*'",
            "shoal role create --role-definition role.json   # Azure's JSON: Name, Actions, NotActions",
        ]
    ),
)
def role_create(
    name: Annotated[str | None, typer.Option("--name", "-n", help="The role's name.")] = None,
    action: Annotated[
        list[str] | None, typer.Option("--action", help="An allowed action pattern (repeat); `*` matches anything.")
    ] = None,
    not_action: Annotated[
        list[str] | None, typer.Option("--not-action", help="An action pattern taken out of those allowed (repeat).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the role is for.")] = None,
    role_definition: Annotated[
        str | None, typer.Option("--role-definition", help="A JSON file (or JSON text) in Azure's role format.")
    ] = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Define a custom role from Azure-style actions, or replace one of that name (server admin).
    Assign it per workspace with `shoal role assignment create`, like a built-in role."""
    spellings = {"Name": "name", "Description": "description", "Actions": "actions", "NotActions": "not_actions"}
    spec = {spellings.get(k, k): v for k, v in (_definition(role_definition) if role_definition else {}).items()}
    name = name or spec.get("name")
    if not name:
        raise UserError("give the role's name (--name, or Name in --role-definition)")
    actions = action or spec.get("actions") or []
    not_actions = not_action or spec.get("not_actions") or []
    text = description if description is not None else spec.get("description") or ""
    result = _access().create_or_update_role(name, actions=actions, not_actions=not_actions, description=text)
    show(result, output, query)


@role_app.command("show", epilog=epilog(["shoal role show -n Reader", "shoal role show -n 'Job Runner'"]))
def role_show(name: RoleNameOpt, output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """Show a role: a built-in one's permissions, a custom one's actions and not-actions."""
    show(_access().get_role(name), output, query)


@role_app.command("delete", epilog=epilog(["shoal role delete -n 'Job Runner' --yes"]))
def role_delete(name: RoleNameOpt, yes: YesOpt = False) -> None:
    """Delete a custom role (server admin); refused while anyone still holds it."""
    if not yes and not typer.confirm(f"Delete the custom role '{name}'?", default=False):
        raise typer.Abort()
    _access().delete_role(name)


@assignment_app.command(
    "create",
    epilog=epilog(
        [
            "shoal role assignment create --assignee alice --role 'AzureML Data Scientist' -w team",
            "shoal role assignment create --assignee bob --role reader",
        ]
    ),
)
def assignment_create(
    assignee: AssigneeOpt,
    role: Annotated[
        str, typer.Option("--role", help="Owner, Contributor, Reader, AzureML Data Scientist, … or a custom role.")
    ],
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Give a user a role in a workspace (roles combine). Needs Owner there, or a server admin."""
    c = client(workspace_name)
    show(c.access.assign_role(c.workspace_name, assignee, role), output, query)


@assignment_app.command("list", epilog=epilog(["shoal role assignment list -w team -o table"]))
def assignment_list(
    workspace_name: WorkspaceOpt = None, output: OutputOpt = OutputFormat.json, query: QueryOpt = None
) -> None:
    """List a workspace's role assignments."""
    c = client(workspace_name)
    show(
        c.access.list_role_assignments(c.workspace_name),
        output,
        query,
        columns=["user", "role", "created_by", "created_at"],
    )


@assignment_app.command(
    "delete",
    epilog=epilog(
        [
            "shoal role assignment delete --assignee alice --role Reader -w team",
            "shoal role assignment delete --assignee alice   # every role in the workspace",
        ]
    ),
)
def assignment_delete(
    assignee: AssigneeOpt,
    role: Annotated[str | None, typer.Option("--role", help="The role to take away (default: all).")] = None,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Take a role (or every role) in a workspace away from a user; it applies to the next request."""
    c = client(workspace_name)
    c.access.remove_role(c.workspace_name, assignee, role)


# -- audit ----------------------------------------------------------------------------------

audit_app = typer.Typer(
    help="The audit log: writes, secret reads and denied requests (admins; a workspace's Owners, its own).",
    no_args_is_help=True,
)


@audit_app.command(
    "list",
    epilog=epilog(
        [
            "shoal audit list -o table",
            "shoal audit list --user alice --since 2026-12-01T00:00:00Z -o table",
            "shoal audit list --workspace team --outcome denied -o json",
        ]
    ),
)
def audit_list(
    user: Annotated[
        str | None, typer.Option("--user", help="Only this actor (a user, 'admin', or job:<ws>/<job>).")
    ] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Only requests to this workspace.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this time (ISO 8601, UTC by default).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this time (ISO 8601).")] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="allowed or denied.")] = None,
    max_results: MaxResultsOpt = 100,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """List audit records, newest first: who, what, when, from where, and the answer. A server
    admin reads every record; an Owner of a workspace reads that workspace's (--workspace)."""
    found = _access().list_audit(
        limit=max_results, user=user, workspace=workspace, since=since, until=until, outcome=outcome
    )
    columns = ["time", "actor", "workspace", "method", "path", "status", "outcome", "client"]
    show(list(found), output, query, columns=columns)
