// Compute (with its running and queued jobs), datastores (never their secrets), and online and
// batch endpoints with their deployments.

import { get, listAll, ws } from "../api.js";
import { durationOf, empty, facts, fmtDuration, fmtTime, h, section, statusBadge, table, tagPills } from "../dom.js";
import { refLink, studioPath } from "../refs.js";

const KINDS = {
  computes: { title: "Compute", api: "computes" },
  datastores: { title: "Datastores", api: "datastores" },
  "online-endpoints": { title: "Online endpoints", api: "onlineEndpoints" },
  "batch-endpoints": { title: "Batch endpoints", api: "batchEndpoints" },
};
const ACTIVE = ["Running", "Queued", "Preparing", "Starting", "Provisioning", "NotStarted", "Finalizing", "CancelRequested"];
// Fields that could hold a credential are never shown, even if a server answered with them.
const SECRET = /(secret|key|password|token|credential|sas|connection_string)/i;

function visible(obj) {
  return Object.fromEntries(Object.entries(obj || {}).filter(([k]) => !SECRET.test(k)));
}

export async function render(main, route) {
  const spec = KINDS[route.kind];
  const base = `${ws(route.ws)}/${spec.api}`;
  if (!route.name) {
    main.append(h("h1", {}, spec.title));
    const rows = await listAll(base, {}, 2000);
    if (!rows.length) {
      main.append(empty(`No ${spec.title.toLowerCase()} in this workspace yet.`));
      return;
    }
    main.append(table([
      { label: "Name", value: (r) => h("a", { href: studioPath(route.ws, route.kind, r.name) }, r.name) },
      { label: "Type", value: (r) => r.type || r.compute || "" },
      { label: "State", value: (r) => r.provisioning_state || r.state || (r.is_default ? "default" : "") },
      { label: "Description", value: (r) => r.description || "" },
    ], rows, { rowHref: (r) => studioPath(route.ws, route.kind, r.name) }));
    return;
  }
  const item = await get(`${base}/${encodeURIComponent(route.name)}`);
  main.append(h("nav", { class: "crumbs" }, h("a", { href: studioPath(route.ws, route.kind) }, spec.title), " / ", route.name), h("h1", {}, route.name));
  const shown = visible(item);
  main.append(section("Details", facts(Object.entries(shown)
    .filter(([k, v]) => !["id", "$schema", "name", "creation_context", "tags"].includes(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => [k.replace(/_/g, " "), String(v)])
    .concat([["Tags", tagPills(item.tags)], ["Created", fmtTime(item.creation_context?.created_at)]]))));
  if (item.credentials) main.append(section("Credentials", h("p", { class: "muted" }, `Type ${item.credentials.type || "set"}; the secret itself is never shown here.`)));
  if (route.kind === "computes") await computeJobs(main, route);
  if (route.kind === "online-endpoints" || route.kind === "batch-endpoints") await deployments(main, route, base, item);
}

async function computeJobs(main, route) {
  const found = [];
  for (const status of ACTIVE) {
    const rows = await listAll(`${ws(route.ws)}/jobs`, { status, max_results: 200 }, 1000).catch(() => []);
    found.push(...rows.filter((j) => (j.compute || "local") === route.name));
  }
  const running = found.filter((j) => j.status === "Running" || j.status === "Finalizing");
  const queued = found.filter((j) => !running.includes(j));
  const jobTable = (rows) => table([
    { label: "Job", value: (j) => h("a", { href: studioPath(route.ws, "jobs", j.name) }, j.display_name || j.name) },
    { label: "Status", value: (j) => statusBadge(j.status) },
    { label: "Experiment", value: (j) => j.experiment_name || "" },
    { label: "Created", value: (j) => fmtTime(j.creation_context?.created_at) },
    { label: "Running for", value: (j) => fmtDuration(durationOf(j)), cls: "num" },
  ], rows, { rowHref: (j) => studioPath(route.ws, "jobs", j.name) });
  main.append(h("div", { class: "cols" },
    section(`Running jobs (${running.length})`, running.length ? jobTable(running) : empty("None.")),
    section(`Queued jobs (${queued.length})`, queued.length ? jobTable(queued) : empty("None."))));
  const nodes = await get(`${ws(route.ws)}/computes/${encodeURIComponent(route.name)}/nodes`).catch(() => null);
  if (nodes?.value?.length) main.append(section("Nodes", table(Object.keys(nodes.value[0]).map((k) => ({ label: k, value: (n) => String(n[k] ?? "") })), nodes.value)));
}

async function deployments(main, route, base, endpoint) {
  const rows = await listAll(`${base}/${encodeURIComponent(route.name)}/deployments`, {}, 500).catch(() => []);
  const traffic = endpoint.traffic || {};
  main.append(section(`Deployments (${rows.length})`, rows.length ? table([
    { label: "Name", value: (d) => d.name },
    { label: "Model", value: (d) => (typeof d.model === "string" ? refLink(route.ws, d.model, "models") : d.model ? "inline" : "") },
    { label: "Component", value: (d) => (typeof d.component === "string" ? refLink(route.ws, d.component, "components") : "") },
    { label: "Environment", value: (d) => (typeof d.environment === "string" ? refLink(route.ws, d.environment, "environments") : "") },
    { label: "Instances", value: (d) => d.instance_count ?? "", cls: "num" },
    { label: "Traffic", value: (d) => (traffic[d.name] !== undefined ? `${traffic[d.name]}%` : endpoint.defaults?.deployment_name === d.name ? "default" : ""), cls: "num" },
    { label: "State", value: (d) => d.provisioning_state || "" },
  ], rows) : empty("No deployments.")));
  if (route.kind === "batch-endpoints") {
    const jobs = await listAll(`${base}/${encodeURIComponent(route.name)}/jobs`, {}, 200).catch(() => []);
    main.append(section(`Jobs (${jobs.length})`, jobs.length ? table([
      { label: "Job", value: (j) => h("a", { href: studioPath(route.ws, "jobs", j.name) }, j.name) },
      { label: "Status", value: (j) => statusBadge(j.status) },
      { label: "Created", value: (j) => fmtTime(j.creation_context?.created_at) },
    ], jobs) : empty("No invocations yet.")));
  }
}
