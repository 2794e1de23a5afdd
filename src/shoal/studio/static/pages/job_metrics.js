// Every metric of a job as a chart (or its system metrics). The page's live feed says which
// metrics moved; only those are fetched again. Zooming fetches the detail of the range shown.

import { chartControls, LineChart } from "../chart.js";
import { empty, h } from "../dom.js";
import { POINTS, isSystem, metricKeys, series, stepRange } from "../series.js";

export async function renderMetrics(panel, live, { system }) {
  const charts = new Map(); // key -> {chart, zoom: step range | null, last: step}
  let settings = { x: system ? "time" : "step", smoothing: 0, log: false };
  const grid = h("div", { class: "chart-grid" });
  const note = h("p", { class: "muted" }, "Loading…");
  panel.append(chartControls((s) => { settings = s; charts.forEach((c) => c.chart.setSettings(s)); }, settings), note, grid);

  const show = (key, entry) => {
    entry.chart.setSeries([{ name: key, points: entry.points, sampled: entry.sampled }]);
    entry.chart.setNote(entry.sampled ? `${entry.points.length} of ${entry.total.toLocaleString()} points (down-sampled; zoom for detail)` : `${entry.points.length.toLocaleString()} points`);
  };
  // A metric that moved: while it is short and shown whole, only the steps after the last one
  // shown are fetched; otherwise the (down-sampled) range shown is fetched again.
  const fetchInto = async (key) => {
    const entry = charts.get(key);
    const lastStep = entry.points?.length ? entry.points[entry.points.length - 1].step : null;
    if (!entry.zoom && entry.points && !entry.sampled && lastStep !== null) {
      const more = await series(live.ws, live.name, key, [lastStep + 1, null]);
      if (!more.sampled && entry.points.length + more.points.length <= POINTS) {
        entry.points = entry.points.concat(more.points);
        entry.total = entry.points.length;
        show(key, entry);
        return;
      }
    }
    const answer = await series(live.ws, live.name, key, entry.zoom);
    Object.assign(entry, { points: answer.points, sampled: answer.sampled, total: answer.total });
    show(key, entry);
  };

  const load = async () => {
    const keys = (await metricKeys(live.ws, live.name)).filter((m) => isSystem(m.key) === system);
    note.replaceChildren(keys.length ? "" : empty(system ? "No system metrics recorded (the runner records them while a job runs)." : "No metrics logged yet."));
    const todo = [];
    for (const m of keys.sort((a, b) => a.key.localeCompare(b.key))) {
      let entry = charts.get(m.key);
      if (!entry) {
        const chart = new LineChart({
          title: m.key,
          onZoom: (range) => {
            entry.zoom = stepRange(chart, range);
            entry.points = null; // a zoom (or its reset) fetches the range afresh
            fetchInto(m.key).catch(() => {});
          },
        });
        chart.setSettings(settings);
        entry = { chart, zoom: null, last: null, points: null, sampled: false, total: 0 };
        charts.set(m.key, entry);
        grid.append(chart.el);
      }
      const mark = `${m.step}:${m.time}:${m.count}`;
      if (entry.last !== mark) todo.push(m.key);
      entry.last = mark;
    }
    await Promise.all(todo.map(fetchInto));
  };
  await load();
  // For benchmarks/studio.py: navigation start to every chart drawn with its data.
  performance.mark(system ? "studio:system-charts-rendered" : "studio:charts-rendered");
  let busy = false;
  const stop = live.subscribe(async () => {
    if (busy) return;
    busy = true;
    try {
      await load();
    } catch {
      // the next update tries again
    } finally {
      busy = false;
    }
  });
  return () => {
    stop();
    charts.forEach((c) => c.chart.dispose());
  };
}
