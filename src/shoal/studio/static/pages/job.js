// One job: header with actions, then tabs. While the job runs the page polls it and every tab
// that shows something live (status, log, metrics) listens for the new state.

import { get, getIfChanged, post, ws } from "../api.js";
import { TERMINAL, clear, errorBox, h, statusBadge, tabs } from "../dom.js";
import { studioPath } from "../refs.js";
import { renderChildren } from "./job_children.js";
import { renderCode, renderEnvironment } from "./job_files.js";
import { renderLogs } from "./job_logs.js";
import { renderMetrics } from "./job_metrics.js";
import { renderOverview } from "./job_overview.js";

// The live feed: the studio "watch" call answers 304 while nothing changed, so an idle open page
// costs the server a tiny request every POLL_MS; a change refetches the job and tells every tab.
const POLL_MS = 1500;

export async function render(main, route, params) {
  const path = `${ws(route.ws)}/jobs/${encodeURIComponent(route.name)}`;
  const live = {
    ws: route.ws,
    name: route.name,
    path,
    job: await get(path),
    watch: null,
    etag: null,
    listeners: new Set(),
    subscribe(fn) {
      this.listeners.add(fn);
      return () => this.listeners.delete(fn);
    },
    async refresh() {
      this.job = await get(path);
      for (const fn of [...this.listeners]) fn(this.job, this.watch);
    },
    // true when something changed (and the listeners were told).
    async poll() {
      const answer = await getIfChanged(`${ws(route.ws)}/studio/jobs/${encodeURIComponent(route.name)}/watch`, this.etag);
      if (!answer.changed) return false;
      this.etag = answer.etag;
      this.watch = answer.body;
      await this.refresh();
      return true;
    },
    running() {
      return !TERMINAL.has(this.job.status);
    },
  };

  const badge = h("span", { class: "job-status" }, statusBadge(live.job.status));
  const message = h("p", { class: "notice", role: "status", hidden: true });
  const actions = h("div", { class: "actions" });
  const act = (label, verb, confirmText) =>
    h("button", {
      type: "button",
      class: verb === "cancel" ? "danger" : "secondary",
      "data-action": verb,
      onclick: async (event) => {
        if (confirmText && !window.confirm(confirmText)) return;
        event.target.disabled = true;
        try {
          await post(`${path}/${verb}`);
          message.textContent = `${label}: done.`;
          message.className = "notice";
          await live.refresh();
        } catch (error) {
          message.textContent = `${label} failed: ${error.message}`;
          message.className = "notice error";
        } finally {
          message.hidden = false;
          event.target.disabled = false;
        }
      },
    }, label);
  const drawActions = (job) => {
    const archived = job.archived === true;
    const running = !TERMINAL.has(job.status);
    clear(actions, running ? act("Cancel", "cancel", `Cancel job ${job.name}?`) : null, running ? null : archived ? act("Restore", "restore") : act("Archive", "archive"));
    clear(badge, statusBadge(job.status), job.status === "Failed" && job.error?.message ? h("span", { class: "muted" }, ` ${job.error.message}`) : null);
  };
  drawActions(live.job);
  live.subscribe(drawActions);

  const crumbs = [h("a", { href: studioPath(route.ws, "jobs") }, "Jobs")];
  if (live.job.experiment_name) crumbs.push(" / ", h("a", { href: `${studioPath(route.ws, "jobs")}?experiment=${encodeURIComponent(live.job.experiment_name)}` }, live.job.experiment_name));
  const parent = live.job.parent_job_name || live.job.properties?.["shoal.parent"];
  if (parent) crumbs.push(" / ", h("a", { href: studioPath(route.ws, "jobs", parent) }, parent));
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, crumbs),
    h("div", { class: "title-row" }, h("h1", {}, live.job.display_name || live.job.name), badge, actions),
    h("p", { class: "muted", hidden: !live.job.display_name || live.job.display_name === live.job.name }, h("code", {}, live.job.name)),
    message,
  );

  const names = ["Overview", "Metrics", "System metrics", "Logs", "Code", "Environment"];
  if (live.job.type === "pipeline" || live.job.type === "sweep") names.splice(1, 0, live.job.type === "sweep" ? "Trials" : "Graph");
  names.push("Child jobs");
  const renderers = {
    Overview: (panel) => renderOverview(panel, live),
    Metrics: (panel) => renderMetrics(panel, live, { system: false }),
    "System metrics": (panel) => renderMetrics(panel, live, { system: true }),
    Logs: (panel) => renderLogs(panel, live),
    Code: (panel) => renderCode(panel, live),
    Environment: (panel) => renderEnvironment(panel, live),
    Graph: (panel) => renderChildren(panel, live, "graph"),
    Trials: (panel) => renderChildren(panel, live, "trials"),
    "Child jobs": (panel) => renderChildren(panel, live, "list"),
  };
  const view = tabs(names, params.get("tab"), (name, panel) => {
    try {
      const out = renderers[name](panel);
      // Renderers may be async: a failure shows in the panel.
      if (out && typeof out.then === "function") {
        let stop = null;
        let gone = false;
        out.then((fn) => (gone && typeof fn === "function" ? fn() : (stop = fn)), (error) => panel.replaceChildren(errorBox(error)));
        return () => {
          gone = true;
          if (typeof stop === "function") stop();
        };
      }
      return out;
    } catch (error) {
      panel.replaceChildren(errorBox(error));
      return null;
    }
  });
  main.append(view.el);

  // Polling stops once the job has ended (and one more refresh has shown the final state).
  let timer = null;
  const tick = async () => {
    try {
      await live.poll();
    } catch {
      // a failed poll is retried on the next tick
    }
    if (live.running() && !live.watch?.terminal) timer = setTimeout(tick, POLL_MS);
    else timer = null;
  };
  // The first answer gives the ETag; later ones are 304 until something moves.
  if (live.running()) timer = setTimeout(tick, 0);
  return () => {
    if (timer) clearTimeout(timer);
    view.dispose();
    live.listeners.clear();
  };
}
