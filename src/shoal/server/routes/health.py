"""The one public route: liveness and versions."""

from __future__ import annotations

import sqlalchemy
from fastapi import APIRouter, Request

from shoal import __version__

router = APIRouter(tags=["health"])
PUBLIC_PATHS = {"/api/v1/health"}


@router.get("/health")
def health(request: Request) -> dict[str, object]:
    db = request.app.state.ctx.db
    return {
        "status": "ok",
        "server_version": __version__,
        "api_version": "v1",
        "database": db.write_engine.dialect.name,
        "sqlalchemy_version": sqlalchemy.__version__,
    }
