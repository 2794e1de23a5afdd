// Compare up to 20 runs: every metric's curves overlaid, params and last metrics side by side with
// the rows that differ highlighted.

import { get, ws } from "../api.js";
import { chartControls, LineChart, PALETTE } from "../chart.js";
import { empty, errorBox, fmtNumber, h, navigate, section, statusBadge } from "../dom.js";
import { studioPath } from "../refs.js";
import { isSystem, runData, seriesOfRuns, stepRange } from "../series.js";

const MAX_RUNS = 20;

function sideBySide(title, runs, valuesOf, format = (v) => v) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(valuesOf(r))))].sort();
  if (!keys.length) return section(title, empty("None."));
  const head = h("tr", {}, h("th", { scope: "col" }, "Name"), runs.map((r, i) => h("th", { scope: "col" }, h("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), r.name)));
  const body = keys.map((k) => {
    const values = runs.map((r) => valuesOf(r)[k]);
    const differ = new Set(values.map((v) => JSON.stringify(v ?? null))).size > 1;
    return h("tr", { class: differ ? "differs" : "", "data-key": k }, h("th", { scope: "row" }, k, differ ? h("span", { class: "sr-only" }, " (differs)") : ""), values.map((v) => h("td", { class: "num" }, v === undefined ? "—" : format(v))));
  });
  return section(title, h("div", { class: "table-wrap" }, h("table", { class: "grid compare" }, h("thead", {}, head), h("tbody", {}, body))));
}

export async function render(main, route, params) {
  const names = [...new Set((params.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean))];
  main.append(h("h1", {}, "Compare runs"));
  const setRuns = (list) => navigate(`${studioPath(route.ws, "compare")}?runs=${list.map(encodeURIComponent).join(",")}`);
  const addBox = h("input", { placeholder: "job name", "aria-label": "job to add", "data-filter-box": "" });
  main.append(h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); const n = addBox.value.trim(); if (n && !names.includes(n)) setRuns([...names, n]); } },
    addBox, h("button", { type: "submit", disabled: names.length >= MAX_RUNS }, "Add run"),
    h("span", { class: "muted" }, `${names.length} of at most ${MAX_RUNS}; pick runs on the jobs page with their check boxes.`)));
  if (names.length > MAX_RUNS) {
    main.append(errorBox(`At most ${MAX_RUNS} runs can be compared; ${names.length} were given.`));
    return;
  }
  if (!names.length) {
    main.append(empty("No runs chosen yet."));
    return;
  }
  const runs = await Promise.all(names.map(async (name) => {
    try {
      const [job, data] = await Promise.all([get(`${ws(route.ws)}/jobs/${encodeURIComponent(name)}`), runData(route.ws, name)]);
      return { name, job, ...data };
    } catch (error) {
      return { name, error };
    }
  }));
  const bad = runs.filter((r) => r.error);
  for (const r of bad) main.append(errorBox(`${r.name}: ${r.error.message}`));
  const ok = runs.filter((r) => !r.error);

  main.append(h("ul", { class: "run-chips" }, ok.map((r, i) => h("li", {},
    h("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }),
    h("a", { href: studioPath(route.ws, "jobs", r.name) }, r.job.display_name || r.name), " ", statusBadge(r.job.status),
    h("button", { type: "button", class: "icon", "aria-label": `remove ${r.name}`, onclick: () => setRuns(names.filter((n) => n !== r.name)) }, "×")))));

  const keys = [...new Set(ok.flatMap((r) => Object.keys(r.metrics)))].filter((k) => !isSystem(k)).sort();
  const charts = [];
  const grid = h("div", { class: "chart-grid" });
  main.append(section("Metrics", chartControls((s) => charts.forEach((c) => c.setSettings(s))), keys.length ? grid : empty("These runs logged no metrics.")));
  main.append(
    sideBySide("Params", ok, (r) => r.params),
    sideBySide("Last metrics", ok, (r) => Object.fromEntries(Object.entries(r.metrics).filter(([k]) => !isSystem(k)).map(([k, m]) => [k, m.value])), fmtNumber));
  // One call per metric brings every run's (down-sampled) curve; zooming asks for the range shown.
  const draw = async (chart, key, range) => {
    const byRun = await seriesOfRuns(route.ws, ok.map((r) => r.name), key, range);
    chart.setSeries(ok.map((r, i) => ({
      name: r.job.display_name || r.name,
      color: PALETTE[i % PALETTE.length],
      points: byRun[r.name]?.points || [],
      sampled: byRun[r.name]?.sampled,
    })));
  };
  await Promise.all(keys.map(async (key) => {
    const chart = new LineChart({ title: key, onZoom: (range) => draw(chart, key, stepRange(chart, range)).catch(() => {}) });
    charts.push(chart);
    grid.append(chart.el);
    await draw(chart, key, null);
  }));
  return () => charts.forEach((c) => c.dispose());
}
