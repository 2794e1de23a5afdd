// Metric data for charts. The server down-samples long metrics (each bucket keeps its min and max),
// so a chart draws at most a few thousand points; zooming asks again for the step range shown.

import { get, mlflow, ws } from "./api.js";

export const POINTS = 1000;

export async function runData(workspace, run) {
  const body = await get(mlflow(workspace, "runs/get"), { run_id: run });
  const data = body.run?.data || {};
  return {
    info: body.run?.info || {},
    metrics: Object.fromEntries((data.metrics || []).map((m) => [m.key, m])),
    params: Object.fromEntries((data.params || []).map((p) => [p.key, p.value])),
    tags: Object.fromEntries((data.tags || []).map((t) => [t.key, t.value])),
  };
}

// [{key, last, step, time, count}]
export async function metricKeys(workspace, job) {
  const body = await get(`${ws(workspace)}/studio/jobs/${encodeURIComponent(job)}/metrics`);
  return body.metrics || [];
}

function pointsOf(answer) {
  const out = [];
  for (let i = 0; i < (answer.step || []).length; i++) {
    out.push({ step: answer.step[i], ts: answer.time[i], value: answer.value[i], min: answer.min?.[i], max: answer.max?.[i] });
  }
  return out;
}

// range: [stepFrom, stepTo] (stepTo null: to the end) or null for the whole metric.
// Answers {points, sampled, total}.
export async function series(workspace, job, key, range = null, points = POINTS) {
  const answer = await get(`${ws(workspace)}/studio/jobs/${encodeURIComponent(job)}/series`, {
    key, points, step_from: range ? range[0] : undefined, step_to: range ? range[1] ?? undefined : undefined,
  });
  return { points: pointsOf(answer), sampled: answer.sampled, total: answer.total };
}

// One metric of several runs at once (compare): {run: {points, sampled, total}}.
export async function seriesOfRuns(workspace, runs, key, range = null, points = POINTS) {
  const answer = await get(`${ws(workspace)}/studio/series`, {
    runs: runs.join(","), key, points, step_from: range ? range[0] : undefined, step_to: range ? range[1] : undefined,
  });
  return Object.fromEntries((answer.series || []).map((s) => [s.job, { points: pointsOf(s), sampled: s.sampled, total: s.total }]));
}

// The step range a chart's zoom covers, whatever its x axis (step, relative time, wall clock).
export function stepRange(chart, range) {
  if (!range) return null;
  if (chart.settings.x === "step") return [Math.floor(range[0]), Math.ceil(range[1])];
  const steps = (chart.projected || []).flatMap((s) => s.pts.filter((p) => p.x >= range[0] && p.x <= range[1]).map((p) => p.step));
  // Bucket midpoints: widen by one bucket on each side so the edges keep their detail.
  if (!steps.length) return null;
  return [Math.min(...steps) - 1, Math.max(...steps) + 1];
}

export const isSystem = (key) => key.startsWith("system/");
