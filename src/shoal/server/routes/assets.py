"""Versioned assets: one set of routes per versioned kind of the kind registry (models, data,
environments, components, codes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict

from shoal.entities.kind_names import VERSIONED_KINDS
from shoal.entities.kinds import KINDS
from shoal.errors import PermissionDeniedError, UserError
from shoal.server.auth import Permission
from shoal.server.routes.common import ctx, guarded, page_body
from shoal.services.access import job_token_scope
from shoal.services.assets import versions as assets
from shoal.services.references import assets as asset_lookup

router = APIRouter()


class ArchiveTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | None = None
    label: str | None = None


def _job_scope(request: Request, kind: str, workspace: str, name: str, spec: dict[str, Any]) -> None:
    """A job token (should a role give it ``write``) registers models as ``model-versions/create``
    lets it: its own files, into names its job created (services/access/job_token_scope.py)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.job is not None:
        if kind != "model":
            raise PermissionDeniedError(f"a job token cannot create {kind} assets", details={"job": principal.job})
        job_token_scope.check_model_spec(ctx(request), workspace, principal.job, name, spec)


def _check_name(spec: dict[str, Any], name: str) -> None:
    if spec.get("name", name) != name:
        raise UserError(f"body name {spec.get('name')!r} does not match the URL's name {name!r}")


def _add_routes(kind: str, plural: str) -> None:
    prefix = f"/workspaces/{{workspace}}/{plural}"
    tags = [plural]

    @guarded(router, "GET", prefix, Permission.READ, tags=tags, name=f"list_{plural}")
    def list_assets(
        request: Request,
        workspace: str,
        name: str | None = None,
        stage: str | None = None,
        list_view_type: str = "ActiveOnly",
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        page = assets.list_page(
            ctx(request),
            workspace,
            kind,
            name=name,
            stage=stage,
            list_view_type=list_view_type,
            max_results=max_results,
            page_token=page_token,
        )
        return page_body(page)

    @guarded(router, "POST", prefix + "/{name}/versions", Permission.WRITE, tags=tags, name=f"create_{kind}_next")
    def create_next(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """Create the next version (auto-increment)."""
        _check_name(spec, name)
        if spec.get("version") is not None:
            raise UserError("this route allocates the version; PUT …/versions/{version} to choose one")
        _job_scope(request, kind, workspace, name, spec)
        return assets.create(ctx(request), workspace, kind, name, spec, None)

    @guarded(router, "PUT", prefix + "/{name}/versions/{version}", Permission.WRITE, tags=tags, name=f"put_{kind}")
    def put_version(
        request: Request, workspace: str, name: str, version: str, spec: dict[str, Any] = Body(...)
    ) -> dict[str, Any]:
        """Create a version with an explicit number; identical re-creates are no-ops."""
        _check_name(spec, name)
        if str(spec.get("version", version)) != version:
            raise UserError(f"body version {spec.get('version')!r} does not match the URL's {version!r}")
        _job_scope(request, kind, workspace, name, spec)
        return assets.create(ctx(request), workspace, kind, name, spec, version)

    @guarded(router, "GET", prefix + "/{name}/versions/{version}", Permission.READ, tags=tags, name=f"get_{kind}")
    def get_version(request: Request, workspace: str, name: str, version: str) -> dict[str, Any]:
        return asset_lookup.resolve(ctx(request), workspace, kind, name, version=version)

    @guarded(router, "GET", prefix + "/{name}/labels/{label}", Permission.READ, tags=tags, name=f"get_{kind}_label")
    def get_label(request: Request, workspace: str, name: str, label: str) -> dict[str, Any]:
        return asset_lookup.resolve(ctx(request), workspace, kind, name, label=label)

    @guarded(
        router,
        "PATCH",
        prefix + "/{name}/versions/{version}",
        Permission.WRITE,
        tags=tags,
        name=f"update_{kind}",
    )
    def patch_version(
        request: Request, workspace: str, name: str, version: str, patch: dict[str, Any] = Body(...)
    ) -> dict[str, Any]:
        return assets.update(ctx(request), workspace, kind, name, version, patch)

    for verb, flag in (("archive", True), ("restore", False)):
        guarded(router, "POST", prefix + f"/{{name}}/{verb}", Permission.WRITE, tags=tags, name=f"{verb}_{kind}")(
            _archive_route(kind, flag)
        )


def _archive_route(kind: str, archived: bool):  # type: ignore[no-untyped-def]
    def change(
        request: Request, workspace: str, name: str, target: ArchiveTarget | None = Body(None)
    ) -> dict[str, Any]:
        """Archive or restore one version, the latest (label), or the whole name."""
        target = target or ArchiveTarget()
        assets.set_archived(
            ctx(request), workspace, kind, name, version=target.version, label=target.label, archived=archived
        )
        return {"name": name, "version": target.version, "label": target.label, "archived": archived}

    return change


for _kind in VERSIONED_KINDS:
    _add_routes(_kind, KINDS[_kind].plural)
