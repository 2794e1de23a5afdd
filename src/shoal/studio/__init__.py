"""Shoal studio: the web pages the server serves under ``/studio/`` (``static/``: plain ES modules,
no build step, shipped in the wheel as package data), and :func:`login_url` for scripts and tests.

The server side lives with the server: ``server/routes/studio_pages.py`` (pages, login, links),
``server/routes/studio_data.py`` and ``services/studio/`` (what the pages read); see docs/studio.md.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"


def login_url(base_url: str, token: str, *, timeout: float = 30.0) -> str:
    """A one-time login link for the studio of the server at ``base_url``, bound to ``token``
    (what ``shoal studio`` prints): opening it signs a browser in with that token's rights."""
    import httpx  # here: the server imports this package for STATIC_DIR alone

    response = httpx.post(
        f"{base_url.rstrip('/')}/api/v1/studio/login-codes",
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )
    response.raise_for_status()
    return str(response.json()["url"])
