"""The studio in a real browser: Debian's Chromium driven by Playwright, against one real Shoal server
per test module with real jobs (scripts/studio_demo.py), signed in through a real login link.

Without Chromium (``/usr/bin/chromium``) or Playwright the tests are skipped with a message, except
under CI=true, where ``.ci/run`` installs Chromium and a missing one is an error. Playwright never
downloads a browser here: it launches the system's.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.studio_demo import make_demo_jobs
from shoal import MLClient
from shoal.config import ShoalSettings
from tests.e2e.conftest import Cli

CHROMIUM = os.environ.get("SHOAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _browser_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the studio browser tests, but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Studio:
    """A running server with the demo jobs: its URL, admin token, SDK client and the jobs' names."""

    def __init__(self, cli: Cli, ml: MLClient, jobs: dict[str, Any]) -> None:
        self.cli = cli
        self.ml = ml
        self.jobs = jobs
        server = json.loads((cli.home / "server.json").read_text())
        self.url = server["url"]
        self.token = (cli.home / "token").read_text().strip()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}/api/v1/{path}", headers=headers, timeout=30, **kwargs)

    def login_url(self) -> str:
        """A one-time login link, as ``shoal studio`` prints it."""
        response = self.api("POST", "studio/login-codes")
        assert response.status_code == 200, response.text
        return response.json()["url"]

    def page_url(self, path: str) -> str:
        return f"{self.url}/studio/workspaces/default/{path}"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Studio]:
    home = tmp_path_factory.mktemp("studio-home")
    cli = Cli(home)
    cli("server", "start", "--detach")
    ml = MLClient(settings=ShoalSettings(home=home))
    jobs: dict[str, Any] = {}
    try:
        jobs.update(make_demo_jobs(ml, tmp_path_factory.mktemp("studio-demo")))
        yield Studio(cli, ml, jobs)
    finally:
        # The demo's long jobs would outlive the server (runners wait for it to come back).
        for name in (jobs.get("running"), jobs.get("sleeper")):
            if name:
                cli("job", "cancel", "-n", name, check=False)
        ml.close()
        cli("server", "stop", check=False)


class Watched:
    """A signed-in page that records console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))


def new_context(browser: Any, **options: Any) -> Any:
    options.setdefault("viewport", {"width": 1280, "height": 800})
    return browser.new_context(**options)


@pytest.fixture
def signed_in(browser: Any, studio: Studio) -> Iterator[Watched]:
    """A fresh browser context signed in through a login link; no console error may happen in it."""
    context = new_context(browser)
    page = context.new_page()
    watched = Watched(page)
    page.goto(studio.login_url())
    page.wait_for_url(f"{studio.url}/studio/**")
    try:
        yield watched
    finally:
        context.close()
    assert watched.errors == [], watched.errors
