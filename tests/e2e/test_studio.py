"""The studio through a real server process and the real CLI: `shoal studio` prints a login link
that signs a plain HTTP client in (cookies only), a job's "Web View" link and MLflow's printed
"View run" link land on the studio's pages, and the session reads the job through the studio's
data calls."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from shoal.studio import STATIC_DIR, login_url

from .conftest import write_job

pytestmark = pytest.mark.e2e

PAGES_INSTALLED = (STATIC_DIR / "index.html").is_file()


def server_of(cli) -> tuple[str, str]:
    url = json.loads((cli.home / "server.json").read_text())["url"]
    return url, (cli.home / "token").read_text().strip()


def signed_in_browser(cli) -> httpx.Client:
    link = cli("studio", "--no-browser").out.strip()
    base, _ = server_of(cli)
    assert re.fullmatch(re.escape(base) + r"/studio/login\?code=[\w-]{20,}", link), link
    browser = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    landed = browser.get(link.removeprefix(base))
    assert landed.status_code == 303 and landed.headers["location"] == "/studio/"
    assert browser.cookies.get("shoal_session") and browser.cookies.get("shoal_csrf")
    return browser


def test_studio_login_and_the_links_that_lead_there(cli, tmp_path):
    base, token = server_of(cli)
    anonymous = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    assert anonymous.get("/studio/").status_code == 303
    assert anonymous.get("/api/v1/workspaces/default/studio/jobs").status_code == 401

    browser = signed_in_browser(cli)
    page = browser.get("/studio/")
    assert page.status_code == (200 if PAGES_INSTALLED else 503)

    # A job's "Web View" link is its studio page.
    job_file = write_job(tmp_path, "command: echo studio\nenvironment:\n  image: library/python:latest\n")
    job = json.loads(cli("job", "create", "--file", str(job_file)).out)
    web_view = job["services"]["Studio"]["endpoint"]
    assert web_view == f"{base}/studio/workspaces/default/jobs/{job['name']}"
    assert browser.get(web_view.removeprefix(base)).status_code == (200 if PAGES_INSTALLED else 503)
    rows = browser.get("/api/v1/workspaces/default/studio/jobs").json()["jobs"]
    assert job["name"] in [r["name"] for r in rows]

    # MLflow's own printed links, from a real MLflow client.
    # Not another test's MLflow settings (MLflow's set_experiment exports MLFLOW_EXPERIMENT_ID).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": f"{base}/api/v1/workspaces/default/mlflow",
        "MLFLOW_TRACKING_TOKEN": token,
    }
    script = "import mlflow\nwith mlflow.start_run(run_name='linked') as r:\n    print('RUN', r.info.run_id)\n"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id = re.search(r"RUN (\S+)", out.stdout).group(1)
    view_run = re.search(r"View run linked at: (\S+)", out.stdout).group(1)
    assert view_run.startswith(f"{base}/api/v1/workspaces/default/mlflow/#/experiments/")
    assert view_run.endswith(f"/runs/{run_id}")
    landing = anonymous.get(view_run.removeprefix(base).split("#")[0])
    assert landing.status_code == 200 and "location.replace" in landing.text  # the fragment is read there
    exp_id = view_run.split("/#/experiments/")[1].split("/")[0]
    exp_page = browser.get(f"/studio/workspaces/default/experiments/{exp_id}")
    assert exp_page.status_code == 302 and exp_page.headers["location"].startswith(
        "/studio/workspaces/default/jobs?experiment="
    )

    # The SDK-side helper gives the same kind of link; Swagger UI is served locally.
    assert login_url(base, token).startswith(f"{base}/studio/login?code=")
    docs = anonymous.get("/docs")
    assert docs.status_code == 200 and anonymous.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
