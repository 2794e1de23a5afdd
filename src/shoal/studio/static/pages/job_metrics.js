// Every metric of a job as a chart (or its system metrics), redrawn while the job runs.

import { chartControls, LineChart } from "../chart.js";
import { empty, h } from "../dom.js";
import { history, isSystem, runData } from "../series.js";

export async function renderMetrics(panel, live, { system }) {
  const charts = new Map();
  let settings = { x: system ? "time" : "step", smoothing: 0, log: false };
  const grid = h("div", { class: "chart-grid" });
  const note = h("p", { class: "muted" }, "Loading…");
  panel.append(chartControls((s) => { settings = s; charts.forEach((c) => c.setSettings(s)); }, settings), note, grid);

  let busy = false;
  const load = async () => {
    if (busy) return;
    busy = true;
    try {
      const data = await runData(live.ws, live.name);
      const keys = Object.keys(data.metrics).filter((k) => isSystem(k) === system).sort();
      note.replaceChildren(keys.length ? "" : empty(system ? "No system metrics recorded (the runner records them while a job runs)." : "No metrics logged yet."));
      for (const key of keys) {
        if (!charts.has(key)) {
          const chart = new LineChart({ title: key });
          chart.setSettings(settings);
          charts.set(key, chart);
          grid.append(chart.el);
        }
      }
      await Promise.all(keys.map(async (key) => {
        const points = await history(live.ws, live.name, key);
        charts.get(key).setSeries([{ name: key, points }]);
      }));
    } finally {
      busy = false;
    }
  };
  await load();
  const stop = live.subscribe(() => load().catch(() => {}));
  return () => {
    stop();
    charts.forEach((c) => c.dispose());
  };
}
