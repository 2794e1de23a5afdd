"""The studio's pages in Chromium against a real server with real jobs (conftest.py): the jobs list
renders and filters, a running job's log and chart update without a reload, compare overlays curves,
a pipeline's graph and a sweep's chart render, actions (cancel, archive, tags) reach the server, a
page without a session is refused, and no page logs a console error."""

from __future__ import annotations

import re

import pytest

from tests.studio.conftest import Watched, new_context

pytestmark = pytest.mark.e2e


def rows(page) -> list[str]:
    page.wait_for_selector("table.grid tbody tr")
    return [a.inner_text() for a in page.query_selector_all("table.grid tbody tr td:nth-child(2) a")]


def test_a_page_without_a_session_goes_to_the_login_page_and_data_calls_get_401(browser, studio):
    context = new_context(browser)
    page = context.new_page()
    try:
        page.goto(studio.page_url("jobs"))
        assert "/studio/login" in page.url
        assert "shoal studio" in page.inner_text("body")
        status = page.evaluate("fetch('/api/v1/workspaces/default/studio/jobs').then(r => r.status)")
        assert status == 401
    finally:
        context.close()


def test_the_jobs_list_renders_and_filters(signed_in: Watched, studio):
    page = signed_in.page
    page.goto(studio.page_url("jobs"))
    shown = rows(page)
    for name in studio.jobs["runs"]:
        assert name in shown
    assert {"prepare-and-train", "lr-sweep", "long-training", "to-cancel"} <= set(shown)
    # A pipeline's steps and a sweep's trials list under their parent, not here.
    assert not any(re.search(r"_\d+$", name) and name.startswith(studio.jobs["sweep"]) for name in shown)

    # An MLflow expression: one run has lr 0.5.
    page.fill("input[name=filter]", "params.lr = '0.5'")
    page.press("input[name=filter]", "Enter")
    page.wait_for_url(re.compile(r"filter="))
    page.wait_for_function("document.querySelectorAll('table.grid tbody tr').length === 1")
    assert rows(page) == [studio.jobs["runs"][1]]

    # Status: only the two running jobs.
    page.goto(studio.page_url("jobs?status=Running"))
    assert set(rows(page)) == {"long-training", "to-cancel"}

    # Experiment and tag, and a chosen metric column sorted ascending.
    page.goto(studio.page_url("jobs?experiment=image-classifier&tag=stage=live"))
    assert rows(page) == ["long-training"]
    page.goto(
        studio.page_url("jobs?experiment=image-classifier&columns=metrics.loss,params.lr&order=metrics.loss%20asc")
    )
    page.wait_for_selector("th:has-text('loss')")
    finished = [name for name in rows(page) if name in studio.jobs["runs"]]
    losses = {name: studio.ml.jobs.get(name).inputs["lr"] for name in finished}
    assert finished[0] == min(losses, key=lambda n: float(losses[n]))  # the smallest lr ends with the lowest loss


def test_a_bad_expression_is_explained_under_the_filter(signed_in: Watched, studio):
    page = signed_in.page
    page.goto(studio.page_url("jobs?filter=metrics.loss%20%3E"))
    alert = page.wait_for_selector("[role=alert]")
    assert "filter" in alert.inner_text().lower()
    # The browser logs the 400 itself; nothing else may be logged.
    signed_in.errors[:] = [e for e in signed_in.errors if "400" not in e]


def test_a_running_jobs_log_and_chart_update_without_a_reload(signed_in: Watched, studio):
    page = signed_in.page
    name = studio.jobs["running"]
    page.goto(studio.page_url(f"jobs/{name}?tab=logs"))
    page.wait_for_function("(document.querySelector('pre.log')?.textContent || '').includes('rank 0 step')")
    count = "(document.querySelector('pre.log')?.textContent || '').split('\\n').length"
    lines = page.evaluate(count)
    page.wait_for_function(f"n => {count} > n + 3", arg=lines, timeout=20000)
    # Every rank has its file.
    options = page.eval_on_selector_all("select[aria-label='Log file'] option", "os => os.map(o => o.value)")
    assert {"user_logs/std_log_process_0.txt", "user_logs/std_log_process_1.txt"} <= set(options)
    page.select_option("select[aria-label='Log file']", "user_logs/std_log_process_1.txt")
    page.wait_for_function("(document.querySelector('pre.log')?.textContent || '').includes('rank 1 step')")

    page.click("#tab-metrics")
    chart = "figure[data-metric='loss'] path.series"
    page.wait_for_selector(chart)
    points = int(page.get_attribute(chart, "data-points"))
    page.wait_for_function(
        "([sel, n]) => Number(document.querySelector(sel)?.dataset.points) > n + 2", arg=[chart, points], timeout=20000
    )
    assert page.query_selector("figure[data-metric='accuracy']") is not None
    # The runner's system metrics have their own tab.
    page.click("#tab-system-metrics")
    page.wait_for_selector("figure[data-metric='system/memory_usage_megabytes'] path.series", timeout=30000)


def test_a_chart_zooms_reads_out_and_switches_axes(signed_in: Watched, studio):
    page = signed_in.page
    page.goto(studio.page_url(f"jobs/{studio.jobs['runs'][0]}?tab=metrics"))
    line = "figure[data-metric='loss'] path.series:not(.raw)"
    page.wait_for_selector(line)
    assert page.get_attribute(line, "data-points") == "40"
    box = page.locator("figure[data-metric='loss'] svg").bounding_box()
    # Hovering shows the nearest point's value.
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.locator("figure[data-metric='loss'] .chart-tip")
    assert "loss:" in tip.inner_text() and "step" in tip.inner_text()
    # Dragging across the middle asks the server for that step range only.
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    page.wait_for_function(f'Number(document.querySelector("{line}").dataset.points) < 20')
    page.dblclick("figure[data-metric='loss'] svg")
    page.wait_for_function(f"document.querySelector(\"{line}\").dataset.points === '40'")
    # The keyboard zooms a focused chart too: "+" narrows, "0" resets.
    page.focus("figure[data-metric='loss']")
    page.keyboard.press("+")
    page.wait_for_function(f'Number(document.querySelector("{line}").dataset.points) < 40')
    page.keyboard.press("0")
    page.wait_for_function(f"document.querySelector(\"{line}\").dataset.points === '40'")
    # Smoothing keeps the raw curve faintly behind; wall-clock ticks are times; log scale still draws.
    page.fill("input[aria-label='Smoothing']", "0.6")
    page.wait_for_selector("figure[data-metric='loss'] path.series.raw")
    page.select_option("select[aria-label='X axis']", "wall")
    ticks = page.eval_on_selector_all("figure[data-metric='loss'] .axes text", "ts => ts.map(t => t.textContent)")
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d( [AP]M)?", t) for t in ticks), ticks
    page.check("text=Log scale")
    assert page.get_attribute(line, "data-points") == "40"


def test_compare_overlays_curves_and_highlights_differences(signed_in: Watched, studio):
    page = signed_in.page
    a, b, _ = studio.jobs["runs"]
    page.goto(studio.page_url(f"compare?runs={a},{b}"))
    page.wait_for_function("document.querySelectorAll(\"figure[data-metric='loss'] path.series\").length === 2")
    assert int(page.get_attribute("figure[data-metric='loss'] path.series", "data-points")) == 40
    assert "differs" in page.get_attribute("tr[data-key='lr']", "class")
    assert "differs" not in page.get_attribute("tr[data-key='batch_size']", "class")


def test_a_pipelines_graph_shows_each_steps_status_and_links_to_it(signed_in: Watched, studio):
    page = signed_in.page
    page.goto(studio.page_url(f"jobs/{studio.jobs['pipeline']}?tab=graph"))
    page.wait_for_selector("svg.pipeline-graph g.node")
    nodes = page.eval_on_selector_all(
        "svg.pipeline-graph g.node", "ns => ns.map(n => [n.dataset.step, n.dataset.status])"
    )
    assert sorted(nodes) == [["evaluate", "Completed"], ["prep", "Completed"], ["train", "Completed"]]
    edges = page.eval_on_selector_all("svg.pipeline-graph path.edge", "es => es.map(e => e.dataset.edge)")
    assert sorted(edges) == ["prep->evaluate", "prep->train"]
    assert "ran" in page.inner_text("table.grid")  # each step's reuse decision, with its reason
    # Run again with another input for train only: prep and evaluate are reused, and say why.
    page.goto(studio.page_url(f"jobs/{studio.jobs['pipeline_again']}?tab=graph"))
    page.wait_for_selector("svg.pipeline-graph g.node")
    reused = page.eval_on_selector_all("svg.pipeline-graph g.node.reused", "ns => ns.map(n => n.dataset.step)")
    assert sorted(reused) == ["evaluate", "prep"]
    assert "reused" in page.inner_text("table.grid")
    page.click("svg.pipeline-graph g.node[data-step='train']")
    page.wait_for_selector("h1:has-text('train')")
    assert "/studio/workspaces/default/jobs/" in page.url


def test_a_sweeps_trials_render_with_the_best_marked(signed_in: Watched, studio):
    page = signed_in.page
    sweep = studio.jobs["sweep"]
    best = studio.ml.jobs.get(sweep).properties["best_child_run_id"]
    page.goto(studio.page_url(f"jobs/{sweep}?tab=trials"))
    page.wait_for_selector("svg.parcoords polyline.trial")
    assert len(page.query_selector_all("svg.parcoords polyline.trial")) == 6
    assert page.get_attribute("svg.parcoords polyline.best", "data-trial") == best
    labels = page.eval_on_selector_all("svg.parcoords .pc-label", "ts => ts.map(t => t.textContent)")
    assert labels == ["lr", "batch", "loss"]
    assert "★ best" in page.inner_text("table.grid")


def test_code_and_assets_pages_render(signed_in: Watched, studio):
    page = signed_in.page
    page.goto(studio.page_url(f"jobs/{studio.jobs['runs'][0]}?tab=code"))
    page.wait_for_selector("pre.code[data-file='train.py']")
    assert "MLFLOW_TRACKING_URI" in page.inner_text("pre.code")
    sections = ("models", "data", "environments", "components", "computes", "datastores")
    for section in (*sections, "online-endpoints", "batch-endpoints"):
        page.goto(studio.page_url(section))
        page.wait_for_selector("main h1")
    # A datastore's page never shows its secret.
    studio.cli("datastore", "create", "--file", "examples/datastore/blob-account-key.yml")
    page.goto(studio.page_url("datastores/blob_example"))
    page.wait_for_selector("h2:has-text('Credentials')")
    assert "examplestorage" in page.inner_text("main")
    assert "not-a-real-key" not in page.content()
    page.goto(studio.page_url("computes/local"))
    page.wait_for_selector("h2:has-text('Running jobs')")
    assert "long-training" in page.inner_text("main") or "to-cancel" in page.inner_text("main")


def test_keyboard_phone_width_and_dark_theme(browser, studio):
    context = new_context(browser, viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    watched = Watched(page)
    try:
        page.goto(studio.login_url())
        page.goto(studio.page_url("jobs"))
        rows(page)
        # "/" jumps to the filter; Up/Down move between rows; Enter opens one.
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.name") == "filter"
        page.focus("table.grid tbody tr")
        page.keyboard.press("ArrowDown")
        second = page.evaluate("document.activeElement.dataset.href")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{second}")
        page.wait_for_selector(".tabs")
        # Nothing wider than the phone's screen (wide tables scroll inside their own box).
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 21, 27)"
        # Tabs follow the arrow keys.
        page.focus("#tab-overview")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.getAttribute('aria-selected')") == "true"
    finally:
        context.close()
    assert watched.errors == []


def test_tags_description_and_archive_go_to_the_server(signed_in: Watched, studio):
    page = signed_in.page
    name = studio.jobs["runs"][2]
    page.goto(studio.page_url(f"jobs/{name}"))
    page.fill("input[aria-label='new tag key']", "reviewed")
    page.fill("input[aria-label='new tag value']", "yes")
    page.click("button:has-text('Add tag')")
    page.wait_for_selector("text=Saved.")
    page.fill("textarea[aria-label='description']", "baseline run")
    page.click("button:has-text('Save description')")
    page.wait_for_function("[...document.querySelectorAll('[role=status]')].some(s => s.textContent === 'Saved.')")
    body = studio.api("GET", f"workspaces/default/jobs/{name}").json()
    assert body["tags"]["reviewed"] == "yes" and body["tags"]["team"] == "vision"
    assert body["description"] == "baseline run"

    page.click("button[data-action='archive']")
    page.wait_for_selector("button[data-action='restore']")
    assert studio.api("GET", f"workspaces/default/jobs/{name}").json().get("archived") is True
    page.click("button[data-action='restore']")
    page.wait_for_selector("button[data-action='archive']")
    assert not studio.api("GET", f"workspaces/default/jobs/{name}").json().get("archived")

    # The session cookie alone does not change anything: a write without the CSRF header is refused.
    status = page.evaluate(
        f"fetch('/api/v1/workspaces/default/jobs/{name}/archive', {{method: 'POST', credentials: 'same-origin'}})"
        ".then(r => r.status)"
    )
    assert status == 403
    signed_in.errors[:] = [e for e in signed_in.errors if "403" not in e]


def test_cancel_from_the_job_page(signed_in: Watched, studio):
    page = signed_in.page
    name = studio.jobs["sleeper"]
    # A jobs list open beside it shows the new status without a reload.
    listing = Watched(page.context.new_page())
    listing.page.goto(studio.page_url("jobs?experiment=housekeeping"))
    listing.page.wait_for_selector("table.grid .status-running")
    page.goto(studio.page_url(f"jobs/{name}"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action='cancel']")
    page.wait_for_selector(".job-status .status-canceled", timeout=30000)
    assert studio.api("GET", f"workspaces/default/jobs/{name}").json()["status"] == "Canceled"
    listing.page.wait_for_selector("table.grid .status-canceled", timeout=15000)
    assert listing.errors == []
