// A job's child jobs: the plain list, a pipeline's graph (steps, status, reuse and why), or a
// sweep's trials (table and parallel coordinates, best trial marked). Redrawn while it runs.

import { get, ws } from "../api.js";
import { durationOf, empty, fmtDuration, fmtNumber, h, section, statusBadge, table } from "../dom.js";
import { pipelineGraph } from "../graph.js";
import { parallelCoordinates } from "../parcoords.js";
import { studioPath } from "../refs.js";
import { runData } from "../series.js";

async function childJobs(live) {
  const rows = [];
  let token = null;
  do {
    const page = await get(`${ws(live.ws)}/jobs`, { parent_job_name: live.name, max_results: 200, page_token: token || undefined });
    rows.push(...(page.value || []));
    token = page.next_page_token;
  } while (token && rows.length < 2000);
  return rows;
}

const jobHref = (live) => (child) => studioPath(live.ws, "jobs", child.name);

function childTable(live, children) {
  return table([
    { label: "Name", value: (c) => h("a", { href: jobHref(live)(c) }, c.display_name || c.name) },
    { label: "Step", value: (c) => c.properties?.["shoal.step"] || "" },
    { label: "Status", value: (c) => statusBadge(c.status) },
    { label: "Type", value: (c) => c.type || "" },
    { label: "Duration", value: (c) => fmtDuration(durationOf(c)), cls: "num" },
    { label: "Reuse", value: (c) => reuseText(c) },
  ], children, { rowHref: jobHref(live) });
}

function reuseText(child) {
  const reuse = child.properties?.reuse;
  if (!reuse) return "";
  return h("span", { title: reuse.reason || "" }, reuse.reused ? h("strong", {}, "reused") : "ran", reuse.reason ? h("span", { class: "muted" }, ` — ${reuse.reason}`) : "");
}

function drawGraph(live, box, children) {
  const byStep = {};
  for (const c of children) if (c.properties?.["shoal.step"]) byStep[c.properties["shoal.step"]] = c;
  const steps = live.job.jobs || {};
  if (!Object.keys(steps).length) {
    box.replaceChildren(empty("This pipeline has no steps."));
    return;
  }
  box.replaceChildren(
    section("Graph", h("div", { class: "graph-wrap" }, pipelineGraph(steps, byStep, jobHref(live))), h("p", { class: "muted legend" }, "Click a step to open its job. A dashed outline means the step reused an earlier job's outputs.")),
    section("Steps", table([
      { label: "Step", value: ([n]) => n },
      { label: "Job", value: ([, c]) => (c ? h("a", { href: jobHref(live)(c) }, c.name) : "not started") },
      { label: "Status", value: ([, c]) => statusBadge(c?.status || "NotStarted") },
      { label: "Duration", value: ([, c]) => (c ? fmtDuration(durationOf(c)) : ""), cls: "num" },
      { label: "Reuse", value: ([, c]) => (c ? reuseText(c) : "") },
    ], Object.keys(steps).map((n) => [n, byStep[n]]))),
  );
}

async function trialRows(live, children) {
  // Each trial's params and last metrics (a few at a time: sweeps have tens to hundreds of trials).
  const runs = {};
  for (let i = 0; i < children.length; i += 8) {
    await Promise.all(children.slice(i, i + 8).map(async (c) => {
      runs[c.name] = await runData(live.ws, c.name).catch(() => null);
    }));
  }
  return children.map((c) => {
    const run = runs[c.name];
    const params = run?.params || {};
    // The sampled values (a mapping; older servers stored it as JSON text).
    let sampled = c.properties?.["shoal.sweep.params"] || {};
    if (typeof sampled === "string") {
      try {
        sampled = JSON.parse(sampled);
      } catch {
        sampled = {};
      }
    }
    const metrics = Object.fromEntries(Object.values(run?.metrics || {}).map((m) => [m.key, m.value]));
    return { name: c.name, job: c, params: { ...params, ...sampled }, metrics, index: Number(c.properties?.["shoal.sweep.index"] ?? 0) };
  }).sort((a, b) => a.index - b.index);
}

async function drawTrials(live, box, children) {
  const job = live.job;
  const metricName = job.objective?.primary_metric || job.properties?.primary_metric;
  const goal = (job.objective?.goal || "minimize").toLowerCase();
  const best = job.properties?.best_child_run_id;
  const rows = await trialRows(live, children);
  const dims = Object.keys(job.search_space || {});
  const trials = rows.map((r) => ({ name: r.name, params: r.params, metric: r.metrics[metricName] }));
  box.replaceChildren(
    section(`Trials (${rows.length})`,
      h("p", {}, "Objective: ", h("strong", {}, `${goal} ${metricName || "?"}`), best ? [" · best trial ", h("a", { href: studioPath(live.ws, "jobs", best) }, best)] : ""),
      h("div", { class: "graph-wrap" }, parallelCoordinates(trials, dims, metricName || "metric", best, goal)),
      rows.length ? table([
        { label: "Trial", value: (r) => h("a", { href: studioPath(live.ws, "jobs", r.name) }, r.name), },
        { label: "Status", value: (r) => statusBadge(r.job.status) },
        ...dims.map((d) => ({ label: d, value: (r) => fmtNumber(Number.isFinite(Number(r.params[d])) ? Number(r.params[d]) : r.params[d]), cls: "num" })),
        { label: metricName || "metric", value: (r) => fmtNumber(r.metrics[metricName]), cls: "num" },
        { label: "", value: (r) => (r.name === best ? h("span", { class: "pill best" }, "★ best") : "") },
      ], rows, { rowHref: (r) => studioPath(live.ws, "jobs", r.name) }) : empty("No trials yet.")),
  );
}

export async function renderChildren(panel, live, mode) {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  panel.append(box);
  let busy = false;
  const draw = async () => {
    if (busy) return;
    busy = true;
    try {
      const children = await childJobs(live);
      if (mode === "graph") drawGraph(live, box, children);
      else if (mode === "trials") await drawTrials(live, box, children);
      else box.replaceChildren(children.length ? childTable(live, children) : empty("No child jobs."));
    } finally {
      busy = false;
    }
  };
  await draw();
  return live.subscribe(() => draw().catch(() => {}));
}
