// Finding jobs for the jobs table: the server's studio search (filters, sort, keyset pages, the
// chosen metric and param columns) and the column keys seen in an experiment.

import { get, ws } from "./api.js";

const studio = (workspace, call) => `${ws(workspace)}/studio/${call}`;

export async function experiments(workspace) {
  const body = await get(studio(workspace, "experiments"));
  return (body.experiments || []).map((e) => ({ id: e.id, name: e.name, count: e.job_count }));
}

export async function columnKeys(workspace, experiment) {
  return get(studio(workspace, "jobs-columns"), { experiment: experiment || undefined });
}

// q: {status, experiment, tag, filter, order: {key, desc}, columns, max_results, page_token, parent}
export async function searchJobs(workspace, q) {
  const params = new URLSearchParams();
  const put = (k, v) => v !== undefined && v !== null && v !== "" && params.append(k, String(v));
  put("experiment", q.experiment);
  put("status", q.status);
  for (const tag of String(q.tag || "").split(",").map((t) => t.trim()).filter(Boolean)) put("tag", tag);
  put("filter", q.filter);
  if (q.order) put("order_by", `${q.order.key} ${q.order.desc ? "desc" : "asc"}`);
  if (q.columns?.length) put("columns", q.columns.join(","));
  put("max_results", q.max_results);
  put("page_token", q.page_token);
  put("parent", q.parent);
  put("archived", q.archived);
  const body = await get(`${studio(workspace, "jobs")}?${params}`);
  return { rows: body.jobs || [], next_page_token: body.next_page_token || null, total: body.total, totalIsLowerBound: body.total_is_lower_bound };
}
