"""Compute targets: records with a provisioning state; ``local`` is built in and always there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.entities.kinds import parse_entity, split_secrets
from shoal.entities.status import OCCUPYING
from shoal.errors import ConflictError, UnsupportedError, UserError
from shoal.services.context import ServiceContext
from shoal.services.records import arm_id, creation_context, iso
from shoal.services.workspaces import workspace_id
from shoal.store import jobs as job_rows
from shoal.store import resources as rows
from shoal.store.paging import Page
from shoal.store.tables import ResourceRow, utcnow

KIND = "compute"
AUTOSCALER_PROPERTY = "shoal.autoscaler"
LOCAL = "local"
# A compute instance's dev box as the server keeps it (pid, port, session…): never in a body.
DEVBOX = "shoal_devbox"
READ_ONLY = (
    "id",
    "creation_context",
    "provisioning_state",
    "provisioning_errors",
    "created_on",
    "state",
    "services",
    DEVBOX,
)
# What the server keeps of a compute's spec across create (re-apply) and update.
KEPT = ("provisioning_state", "state", "last_operation", DEVBOX)
INSTANCE = "computeinstance"
# Fields `az ml compute update` may change; everything else is fixed at creation.
UPDATABLE = {
    "min_instances",
    "max_instances",
    "idle_time_before_scale_down",
    "description",
    "tags",
    "identity",
    "idle_time_before_shutdown",
    "idle_time_before_shutdown_minutes",
}


@dataclass(frozen=True)
class Viewer:
    """Who reads a compute: a dev box's sign-in link (its Jupyter token) is shown only to the
    user who started it and to admins; anyone else who may read computes sees the bare URL."""

    admin: bool = True
    user: str | None = None

    def may_sign_in(self, started_by: str | None) -> bool:
        return self.admin or (self.user is not None and self.user == started_by)


def local_body(workspace: str) -> dict[str, Any]:
    return {
        "name": LOCAL,
        "type": "local",
        "description": "The machine the Shoal server runs on",
        "id": arm_id(workspace, "computes", LOCAL),
        "provisioning_state": "Succeeded",
    }


def to_body(workspace: str, row: ResourceRow) -> dict[str, Any]:
    body = {k: v for k, v in row.spec.items() if k != DEVBOX}
    body["name"] = row.name
    body["id"] = arm_id(workspace, "computes", row.name)
    body["created_on"] = iso(row.created_at)
    body["creation_context"] = creation_context(row.created_at, row.updated_at)
    body.setdefault("provisioning_state", "Succeeded")
    return body


def _validate(spec: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in spec.items() if k not in READ_ONLY}
    if clean.get("type") == "amlcompute":
        clean.pop("properties", None)  # the server's own (shoal.autoscaler), set on read
    entity = parse_entity(KIND, clean)
    data = entity.to_dict()
    if entity.name == LOCAL:
        raise UserError("compute 'local' is built in and cannot be created or changed")
    lo, hi = data.get("min_instances"), data.get("max_instances")
    if lo is not None and hi is not None and lo > hi:
        raise UserError(f"compute '{entity.name}': min_instances ({lo}) is greater than max_instances ({hi})")
    return data


def create_or_update(ctx: ServiceContext, workspace: str, spec: dict[str, Any]) -> dict[str, Any]:
    data = _validate(spec)
    public, secrets = split_secrets(KIND, data)
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        existing = rows.find_row(session, ws_id, KIND, data["name"])
        if existing is not None and existing.type != data["type"]:
            raise ConflictError(
                f"compute '{data['name']}' exists with type '{existing.type}'; delete it before "
                f"creating it as '{data['type']}'"
            )
        public["provisioning_state"] = "Succeeded"
        if data["type"] == INSTANCE:
            # Stored Stopped; a new one then starts its dev box (services/compute/instances.py).
            kept = {k: existing.spec[k] for k in KEPT if existing is not None and k in existing.spec}
            public.update({"state": "Stopped", **kept, "provisioning_state": "Succeeded"})
        token = ctx.secrets.encrypt(secrets) if secrets else None
        row, _ = rows.put(session, ws_id, KIND, data["name"], data["type"], public, token)
        return to_body(workspace, row)


def present(ctx: ServiceContext, workspace: str, row: ResourceRow, viewer: Viewer) -> dict[str, Any]:
    """A compute's body; a running compute instance's with its ``services`` (JupyterLab's URLs)."""
    body = to_body(workspace, row)
    box = row.spec.get(DEVBOX) or {}
    if row.type == INSTANCE and body.get("state") == "Running" and box.get("port"):
        base = f"http://127.0.0.1:{box['port']}"
        query = ""
        if viewer.may_sign_in(box.get("started_by")) and box.get("token"):
            query = "?token=" + str(ctx.secrets.decrypt(box["token"]).get("jupyter", ""))
        body["services"] = [
            {"display_name": "Jupyter Lab", "endpoint_uri": f"{base}/lab{query}"},
            {"display_name": "Jupyter", "endpoint_uri": f"{base}/tree{query}"},
        ]
    return body


def exists(ctx: ServiceContext, workspace: str, name: str) -> bool:
    with ctx.db.read() as session:
        return rows.find_row(session, workspace_id(session, workspace), KIND, name) is not None


def get(
    ctx: ServiceContext, workspace: str, name: str, viewer: Viewer | None = None, engine: Any = None
) -> dict[str, Any]:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if name == LOCAL:
            return local_body(workspace)
        body = present(ctx, workspace, rows.get_row(session, ws_id, KIND, name), viewer or Viewer())
    if engine is not None and body.get("type") == "amlcompute":
        # Whether min_instances and idle_time_before_scale_down reach an autoscaler.
        note = engine.autoscaler_note(int(body.get("min_instances") or 0))
        body["properties"] = {**(body.get("properties") or {}), AUTOSCALER_PROPERTY: note}
    return body


def list_page(
    ctx: ServiceContext,
    workspace: str,
    *,
    compute_type: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
    viewer: Viewer | None = None,
) -> Page[dict[str, Any]]:
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        page = rows.list_page(session, ws_id, KIND, type_=compute_type, max_results=max_results, page_token=page_token)
        items = [present(ctx, workspace, row, viewer or Viewer()) for row in page.items]
    if not page_token and compute_type in (None, "local"):
        items.insert(0, local_body(workspace))
    return Page(items, page.next_page_token)


def update(ctx: ServiceContext, workspace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    if name == LOCAL:
        raise UserError("compute 'local' is built in and cannot be changed")
    bad = sorted(set(patch) - UPDATABLE)
    if bad:
        raise UserError(
            f"compute field(s) {', '.join(bad)} cannot be updated; updatable: {', '.join(sorted(UPDATABLE))}"
        )
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        row = rows.get_row(session, ws_id, KIND, name)
        merged = {**row.spec, **patch, "name": name}
        data = _validate(merged)
        public, _ = split_secrets(KIND, data)
        for key in KEPT:
            if key in row.spec:
                public[key] = row.spec[key]
        row.spec = public
        row.updated_at = utcnow()
        return to_body(workspace, row)


def delete(ctx: ServiceContext, workspace: str, name: str) -> None:
    if name == LOCAL:
        raise UserError("compute 'local' is built in and cannot be deleted")
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        rows.delete(session, rows.get_row(session, ws_id, KIND, name))


def list_nodes(ctx: ServiceContext, workspace: str, name: str, engine: Any = None) -> list[dict[str, Any]]:
    """What runs where: one entry per node of a cluster (``az ml compute list-nodes``).

    On this machine a cluster's nodes are the ``max_instances`` slots its jobs take (a job takes
    ``resources.instance_count`` of them), filled in start order. With a cluster ``engine`` (the
    server's Ray backend, ``shoal.compute.cluster_engine``) they are the engine's nodes that hold
    this cluster's jobs, and an entry without a node for each job still waiting for one.
    """
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if name == LOCAL:
            slots = None
        else:
            row = rows.get_row(session, ws_id, KIND, name)
            if row.type != "amlcompute":
                raise UnsupportedError(f"compute '{name}' is of type '{row.type}': list-nodes is for clusters")
            slots = int(row.spec.get("max_instances") or 1)
        running = job_rows.on_compute(session, ws_id, name, OCCUPYING)
        if engine is not None and slots is not None:
            return _engine_nodes(engine, workspace, {job.name: job.status for job in running})
    nodes: list[dict[str, Any]] = []
    for job in running:
        count = max(1, int((job.spec.get("resources") or {}).get("instance_count") or 1))
        for _ in range(count):
            nodes.append(_node(len(nodes), "running" if job.status == "Running" else "preparing", job.name))
    if slots is not None:
        while len(nodes) < slots:
            nodes.append(_node(len(nodes), "idle", None))
    return nodes


def _engine_nodes(engine: Any, workspace: str, jobs: dict[str, str]) -> list[dict[str, Any]]:
    """The engine's nodes holding ``jobs`` (name: status), in Azure's fields plus ``run_ids``
    (every job on the node), ``resources`` and ``host``."""
    nodes: list[dict[str, Any]] = []
    placed: set[str] = set()
    for node in engine.cluster_nodes():
        runs = [key.job for key in node["attempts"] if key.workspace == workspace and key.job in jobs]
        if not runs:
            continue
        placed.update(runs)
        nodes.append(
            {
                "node_id": node["node_id"],
                "node_state": node["node_state"],
                "run_id": runs[0],
                "run_ids": runs,
                "private_ip_address": node["private_ip_address"],
                "public_ip_address": None,
                "port": node["port"],
                "host": node["host"],
                "resources": node["resources"],
            }
        )
    for job in sorted(set(jobs) - placed):
        # Claimed, its actor still waiting for a node (or not answered yet).
        nodes.append({**_node(len(nodes), "preparing", job), "node_id": None, "private_ip_address": None})
    return nodes


def _node(index: int, state: str, run_id: str | None) -> dict[str, Any]:
    return {
        "node_id": f"node-{index}",
        "node_state": state,
        "run_id": run_id,
        "private_ip_address": "127.0.0.1",
        "public_ip_address": None,
        "port": None,
    }
