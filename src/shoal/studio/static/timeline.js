// A job's status timeline from its `shoal.status_time.<Status>` properties.

import { fmtDuration, fmtTime, h } from "./dom.js";

export function statusTimes(job) {
  const out = [];
  for (const [key, value] of Object.entries(job.properties || {})) {
    if (!key.startsWith("shoal.status_time.")) continue;
    out.push({ status: key.slice("shoal.status_time.".length), at: Date.parse(value), iso: value });
  }
  return out.sort((a, b) => a.at - b.at);
}

export function timeline(job) {
  const times = statusTimes(job);
  if (!times.length) return h("p", { class: "muted" }, "No status changes recorded yet.");
  const end = job.end_time ? Date.parse(job.end_time) : Date.now();
  const start = times[0].at;
  const total = Math.max(end - start, 1);
  const bar = h("div", { class: "timeline-bar", role: "img", "aria-label": "status timeline" });
  const list = h("ol", { class: "timeline-list" });
  times.forEach((t, i) => {
    const until = i + 1 < times.length ? times[i + 1].at : end;
    const span = Math.max(until - t.at, 0);
    bar.append(h("span", { class: `seg status-${t.status.toLowerCase()}`, style: `flex-grow:${Math.max(span / total, 0.02)}`, title: `${t.status}: ${fmtDuration(span / 1000)}` }));
    list.append(h("li", {}, h("span", { class: `dot status-${t.status.toLowerCase()}` }), h("strong", {}, t.status), " ", h("time", { datetime: t.iso }, fmtTime(t.iso)), i + 1 < times.length || !job.end_time ? ` · ${fmtDuration(span / 1000)}` : ""));
  });
  return h("div", { class: "timeline" }, bar, list);
}
