// Finding jobs for the jobs table: filters, sort, paging, and chosen metric/param columns.

import { get, mlflow, post, ws } from "./api.js";

const RUN_STATUS = { RUNNING: "Running", SCHEDULED: "Queued", FINISHED: "Completed", FAILED: "Failed", KILLED: "Canceled" };
const STATUS_RUN = { Running: "RUNNING", Queued: "SCHEDULED", NotStarted: "SCHEDULED", Preparing: "SCHEDULED", Completed: "FINISHED", Failed: "FAILED", Canceled: "KILLED" };

export async function experiments(workspace) {
  const body = await get(mlflow(workspace, "experiments/search"), { max_results: 1000 });
  return (body.experiments || []).map((e) => ({ id: e.experiment_id, name: e.name }));
}

function pairs(list) {
  return Object.fromEntries((list || []).map((item) => [item.key, item.value]));
}

function rowOfRun(run) {
  const info = run.info;
  const tags = pairs(run.data?.tags);
  const shown = Object.fromEntries(Object.entries(tags).filter(([k]) => !k.startsWith("mlflow.")));
  return {
    name: info.run_id,
    display_name: info.run_name || info.run_id,
    status: RUN_STATUS[info.status] || info.status,
    experiment_id: info.experiment_id,
    start_time: info.start_time ? new Date(info.start_time).toISOString() : null,
    end_time: info.end_time ? new Date(info.end_time).toISOString() : null,
    created_at: info.start_time ? new Date(info.start_time).toISOString() : null,
    tags: shown,
    metrics: pairs(run.data?.metrics),
    params: pairs(run.data?.params),
    parent_job_name: tags["mlflow.parentRunId"] || null,
  };
}

function tagClause(tag) {
  if (!tag) return "";
  const [key, ...rest] = tag.split("=");
  const k = key.trim();
  const quoted = /^[A-Za-z_][\w.]*$/.test(k) ? `tags.${k}` : `tags.\`${k}\``;
  if (!rest.length) return `${quoted} LIKE '%'`;
  return `${quoted} = '${rest.join("=").trim().replace(/'/g, "\\'")}'`;
}

// order: {key: "created_at"|"duration"|"status"|"name"|"metrics.x"|"params.x", desc}
function orderBy(order) {
  const dir = order.desc ? "DESC" : "ASC";
  if (order.key.startsWith("metrics.") || order.key.startsWith("params.")) return [`${order.key} ${dir}`];
  const attr = { created_at: "attributes.start_time", status: "attributes.status", name: "attributes.run_name", duration: "attributes.start_time" }[order.key];
  return attr ? [`${attr} ${dir}`] : [];
}

// One page of jobs: {rows, next_page_token, keys: {metrics, params}}. Over MLflow's runs/search
// (every job is a run): it filters by expression, tag and status and sorts by metric or param.
export async function searchJobs(workspace, q, experimentList) {
  const ids = q.experiment
    ? experimentList.filter((e) => e.name === q.experiment).map((e) => e.id)
    : experimentList.map((e) => e.id);
  if (!ids.length) return { rows: [], next_page_token: null, keys: { metrics: [], params: [] } };
  const clauses = [];
  if (q.filter) clauses.push(`(${q.filter})`);
  if (q.tag) clauses.push(tagClause(q.tag));
  if (q.status && STATUS_RUN[q.status]) clauses.push(`attributes.status = '${STATUS_RUN[q.status]}'`);
  const body = await post(mlflow(workspace, "runs/search"), {
    experiment_ids: ids,
    filter: clauses.join(" and "),
    order_by: orderBy(q.order),
    max_results: q.max_results || 50,
    page_token: q.page_token || undefined,
  });
  const names = Object.fromEntries(experimentList.map((e) => [e.id, e.name]));
  const rows = (body.runs || []).map(rowOfRun).map((row) => ({ ...row, experiment_name: names[row.experiment_id] }));
  const keys = { metrics: new Set(), params: new Set() };
  for (const row of rows) {
    Object.keys(row.metrics).forEach((k) => keys.metrics.add(k));
    Object.keys(row.params).forEach((k) => keys.params.add(k));
  }
  // Job fields MLflow does not know (type, compute) come from the jobs API, one page at a time.
  const details = await Promise.all(rows.map((row) => get(`${ws(workspace)}/jobs/${encodeURIComponent(row.name)}`).catch(() => null)));
  rows.forEach((row, i) => {
    const job = details[i];
    if (!job) return;
    Object.assign(row, {
      type: job.type,
      compute: job.compute,
      status: job.status,
      display_name: job.display_name,
      tags: job.tags || row.tags,
      created_at: job.creation_context?.created_at || row.created_at,
      start_time: job.start_time || row.start_time,
      end_time: job.end_time || row.end_time,
    });
  });
  return {
    rows,
    next_page_token: body.next_page_token || null,
    keys: { metrics: [...keys.metrics].sort(), params: [...keys.params].sort() },
  };
}
