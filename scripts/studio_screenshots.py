"""Screenshots of the studio's main pages for the README and docs/studio.md (docs/images/studio-*.png).

Starts a Shoal server in a temporary SHOAL_HOME, submits the demo jobs (scripts/studio_demo.py) and
the README's example assets, signs Debian's Chromium in through a login link and saves each page.

    PYTHONPATH=src .venv/bin/python scripts/studio_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from scripts.studio_demo import make_demo_jobs  # noqa: E402
from shoal import MLClient  # noqa: E402
from shoal.config import ShoalSettings  # noqa: E402
from shoal.studio import login_url  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ASSETS = [
    ("model", "examples/model/mlflow-model.yml"),
    ("data", "examples/data/iris-mltable.yml"),
    ("environment", "examples/environment/sklearn-conda.yml"),
    ("component", "examples/component/train.yml"),
    ("compute", "examples/compute/cpu-cluster.yml"),
]


def shoal(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "shoal.cli.main", *args, "-o", "none"], env=env, cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="shoal-shots-") as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        env["SHOAL_HOME"] = str(home)
        env["XDG_CONFIG_HOME"] = str(home / "config")
        subprocess.run([sys.executable, "-m", "shoal.cli.main", "server", "start", "--detach"], env=env, check=True)
        try:
            for kind, path in ASSETS:
                shoal(env, kind, "create", "--file", path)
            ml = MLClient(settings=ShoalSettings(home=home))
            jobs = make_demo_jobs(ml, Path(tmp) / "demo")
            time.sleep(8)  # the long job logs a few dozen steps first
            base = json.loads((home / "server.json").read_text())["url"]
            shoot(args, base, (home / "token").read_text().strip(), jobs)
            ml.close()
        finally:
            subprocess.run([sys.executable, "-m", "shoal.cli.main", "server", "stop"], env=env, check=False)


def shoot(args: argparse.Namespace, base: str, token: str, jobs: dict) -> None:
    ws = f"{base}/studio/workspaces/default"
    runs = ",".join(jobs["runs"])
    curve = "figure[data-metric='loss'] path.series"
    pages = [
        ("studio-jobs.png", f"{ws}/jobs?columns=metrics.loss,params.lr", "table.grid tbody tr"),
        ("studio-job-metrics.png", f"{ws}/jobs/{jobs['running']}?tab=metrics", curve),
        ("studio-job-logs.png", f"{ws}/jobs/{jobs['running']}?tab=logs", "pre.log"),
        ("studio-compare.png", f"{ws}/compare?runs={runs}", curve),
        ("studio-pipeline.png", f"{ws}/jobs/{jobs['pipeline_again']}?tab=graph", "svg.pipeline-graph g.node"),
        ("studio-sweep.png", f"{ws}/jobs/{jobs['sweep']}?tab=trials", "svg.parcoords polyline.trial"),
        ("studio-model.png", f"{ws}/models/credit-model", "h2:has-text('Lineage')"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        for scheme, viewport, shots in (
            ("light", {"width": 1280, "height": 800}, pages),
            ("dark", {"width": 390, "height": 844}, [("studio-phone-dark.png", *pages[1][1:])]),
        ):
            context = browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)
            page = context.new_page()
            page.goto(login_url(base, token))
            for name, url, ready in shots:
                page.goto(url)
                page.wait_for_selector(ready)
                page.wait_for_timeout(1200)  # charts and the log settle
                page.screenshot(path=str(args.out / name))
                print(f"saved {args.out / name}")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
