// Metric data for charts: a run's metric keys and each key's points ({step, ts, value}).

import { get, mlflow } from "./api.js";

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

export async function history(workspace, run, key) {
  const points = [];
  let token = null;
  do {
    const body = await get(mlflow(workspace, "metrics/get-history"), { run_id: run, metric_key: key, max_results: 25000, page_token: token || undefined });
    for (const m of body.metrics || []) points.push({ step: m.step, ts: m.timestamp, value: m.value });
    token = body.next_page_token;
  } while (token && points.length < 200000);
  points.sort((a, b) => a.step - b.step || a.ts - b.ts);
  return points;
}

export const isSystem = (key) => key.startsWith("system/");
