"""The one public route: liveness, and versions for those who may see them.

On a team server (``ShoalSettings.is_team_mode``) the version details, which tell an attacker
what to try, are shown to a caller with a valid token only; anyone gets ``{"status": "ok"}``."""

from __future__ import annotations

import sqlalchemy
from fastapi import APIRouter, Request

from shoal import __version__

router = APIRouter(tags=["health"])
PUBLIC_PATHS = {"/api/v1/health"}


@router.get("/health")
def health(request: Request) -> dict[str, object]:
    if request.app.state.team_mode and getattr(request.state, "principal", None) is None:
        return {"status": "ok"}
    db = request.app.state.ctx.db
    return {
        "status": "ok",
        "server_version": __version__,
        "api_version": "v1",
        "database": db.write_engine.dialect.name,
        "sqlalchemy_version": sqlalchemy.__version__,
    }
