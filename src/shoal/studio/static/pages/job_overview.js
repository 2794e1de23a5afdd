// A job's overview: status timeline, facts, params, inputs and outputs, tags and description
// (editable), and a sweep's best trial.

import { patch } from "../api.js";
import { durationOf, empty, facts, fmtDuration, fmtNumber, fmtTime, h, section, statusBadge, table } from "../dom.js";
import { ioLinks, refLink, studioPath } from "../refs.js";
import { runData } from "../series.js";
import { timeline } from "../timeline.js";

function jobFacts(live, job) {
  return facts([
    ["Status", statusBadge(job.status)],
    ["Type", job.type],
    ["Experiment", job.experiment_name ? h("a", { href: `${studioPath(live.ws, "jobs")}?experiment=${encodeURIComponent(job.experiment_name)}` }, job.experiment_name) : ""],
    ["Compute", job.compute ? h("a", { href: studioPath(live.ws, "computes", job.compute) }, job.compute) : ""],
    ["Created", fmtTime(job.creation_context?.created_at)],
    ["Created by", job.creation_context?.created_by],
    ["Started", fmtTime(job.start_time)],
    ["Ended", fmtTime(job.end_time)],
    ["Duration", fmtDuration(durationOf(job))],
    ["Exit code", job.exit_code ?? ""],
    ["Error", job.error?.message || ""],
    ["Component", typeof job.component === "string" ? refLink(live.ws, job.component, "components") : ""],
    ["Command", job.command ? h("pre", { class: "command" }, job.command) : ""],
    ["Distribution", job.distribution ? JSON.stringify(job.distribution) : ""],
    ["Archived", job.archived ? "yes" : ""],
  ]);
}

function ioTable(live, title, entries) {
  const rows = Object.entries(entries || {});
  if (!rows.length) return null;
  return section(title, table([
    { label: "Name", value: ([k]) => k },
    { label: "Value", value: ([, v]) => ioLinks(live.ws, v) },
  ], rows));
}

function tagEditor(live, job) {
  const list = h("div", { class: "tag-list" });
  const tags = { ...(job.tags || {}) };
  const status = h("span", { class: "muted", role: "status" });
  const save = async (next) => {
    status.textContent = "Saving…";
    try {
      live.job = await patch(live.path, { tags: next });
      Object.keys(tags).forEach((k) => delete tags[k]);
      Object.assign(tags, live.job.tags || {});
      draw();
      status.textContent = "Saved.";
    } catch (error) {
      status.textContent = `Not saved: ${error.message}`;
    }
  };
  const draw = () => {
    list.replaceChildren(...Object.entries(tags).map(([k, v]) =>
      h("span", { class: "pill editable" }, v === "" ? k : `${k}: ${v}`,
        h("button", { type: "button", class: "icon", "aria-label": `remove tag ${k}`, onclick: () => { const next = { ...tags }; delete next[k]; save(next); } }, "×"))));
    if (!Object.keys(tags).length) list.append(h("span", { class: "muted" }, "No tags."));
  };
  draw();
  const key = h("input", { placeholder: "key", "aria-label": "new tag key", required: true, size: 10 });
  const value = h("input", { placeholder: "value", "aria-label": "new tag value", size: 12 });
  const form = h("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); if (!key.value.trim()) return; save({ ...tags, [key.value.trim()]: value.value }); key.value = ""; value.value = ""; } },
    key, value, h("button", { type: "submit" }, "Add tag"), status);
  return section("Tags", list, form);
}

function descriptionEditor(live, job) {
  const area = h("textarea", { rows: 3, "aria-label": "description", placeholder: "What this job is for" }, job.description || "");
  const status = h("span", { class: "muted", role: "status" });
  const form = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    status.textContent = "Saving…";
    try {
      live.job = await patch(live.path, { description: area.value });
      status.textContent = "Saved.";
    } catch (error) {
      status.textContent = `Not saved: ${error.message}`;
    }
  } }, area, h("div", {}, h("button", { type: "submit" }, "Save description"), " ", status));
  return section("Description", form);
}

export async function renderOverview(panel, live) {
  const top = h("div", { class: "cols" });
  const timelineBox = section("Status timeline", timeline(live.job));
  const factsBox = section("Details", jobFacts(live, live.job));
  top.append(factsBox, timelineBox);
  panel.append(top);

  const paramsBox = section("Params", h("p", { class: "muted" }, "Loading…"));
  const metricsBox = section("Last metrics", h("p", { class: "muted" }, "Loading…"));
  panel.append(h("div", { class: "cols" }, paramsBox, metricsBox));
  const drawRun = async () => {
    const data = await runData(live.ws, live.name).catch(() => null);
    if (!data) return;
    const params = Object.entries(data.params);
    paramsBox.replaceChildren(h("h2", {}, "Params"), params.length ? table([{ label: "Name", value: ([k]) => k }, { label: "Value", value: ([, v]) => v }], params) : empty("No params logged."));
    const metrics = Object.values(data.metrics).filter((m) => !m.key.startsWith("system/"));
    metricsBox.replaceChildren(h("h2", {}, "Last metrics"), metrics.length ? table([{ label: "Metric", value: (m) => m.key }, { label: "Value", value: (m) => fmtNumber(m.value), cls: "num" }, { label: "Step", value: (m) => m.step, cls: "num" }], metrics) : empty("No metrics logged."));
  };
  await drawRun();

  if (live.job.type === "sweep") {
    const props = live.job.properties || {};
    panel.append(section("Best trial", props.best_child_run_id
      ? facts([["Trial", h("a", { href: studioPath(live.ws, "jobs", props.best_child_run_id) }, props.best_child_run_id)], [props.primary_metric || "metric", props.best_metric_value]])
      : empty("No trial has finished yet.")));
  }
  panel.append(...[ioTable(live, "Inputs", live.job.inputs), ioTable(live, "Outputs", live.job.outputs)].filter(Boolean));
  panel.append(h("div", { class: "cols" }, tagEditor(live, live.job), descriptionEditor(live, live.job)));

  let last = live.job.status;
  return live.subscribe((job) => {
    timelineBox.replaceChildren(h("h2", {}, "Status timeline"), timeline(job));
    factsBox.replaceChildren(h("h2", {}, "Details"), jobFacts(live, job));
    if (job.status !== last || job.status === "Running") drawRun();
    last = job.status;
  });
}
