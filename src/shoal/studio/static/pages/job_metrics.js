// Every metric of a job as a chart (or its system metrics). The page's live feed says which
// metrics moved; only those are fetched again. Zooming fetches the detail of the range shown.

import { chartControls, LineChart } from "../chart.js";
import { empty, h } from "../dom.js";
import { isSystem, metricKeys, series, stepRange } from "../series.js";

export async function renderMetrics(panel, live, { system }) {
  const charts = new Map(); // key -> {chart, zoom: step range | null, last: step}
  let settings = { x: system ? "time" : "step", smoothing: 0, log: false };
  const grid = h("div", { class: "chart-grid" });
  const note = h("p", { class: "muted" }, "Loading…");
  panel.append(chartControls((s) => { settings = s; charts.forEach((c) => c.chart.setSettings(s)); }, settings), note, grid);

  const fetchInto = async (key) => {
    const entry = charts.get(key);
    const answer = await series(live.ws, live.name, key, entry.zoom);
    entry.chart.setSeries([{ name: key, points: answer.points, sampled: answer.sampled }]);
    entry.chart.setNote(answer.sampled ? `${answer.points.length} of ${answer.total.toLocaleString()} points (down-sampled; zoom for detail)` : `${answer.total.toLocaleString()} points`);
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
            fetchInto(m.key).catch(() => {});
          },
        });
        chart.setSettings(settings);
        entry = { chart, zoom: null, last: null };
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
