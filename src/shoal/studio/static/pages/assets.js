// Models, data, environments and components: the list, one asset's versions and labels, and one
// version with its files and lineage (the job that produced it, the jobs that used it).

import { get, listAll, ws } from "../api.js";
import { clear, empty, facts, fmtTime, h, section, statusBadge, table, tagPills } from "../dom.js";
import { refLink, studioPath } from "../refs.js";
import { datastorePath, fileBrowser } from "./job_files.js";

const TITLES = { models: "Models", data: "Data", environments: "Environments", components: "Components" };

export async function render(main, route) {
  const { kind } = route;
  if (!route.name) return renderList(main, route);
  const versions = await listAll(`${ws(route.ws)}/${kind}`, { name: route.name, list_view_type: "All" });
  versions.sort((a, b) => (Number(b.version) || 0) - (Number(a.version) || 0) || String(b.version).localeCompare(String(a.version)));
  main.append(h("nav", { class: "crumbs" }, h("a", { href: studioPath(route.ws, kind) }, TITLES[kind]), " / ", route.name), h("h1", {}, route.name));
  if (!versions.length) {
    main.append(empty(`No ${kind} asset named ${route.name}.`));
    return;
  }
  const current = versions.find((v) => String(v.version) === String(route.version)) || versions[0];
  const latest = versions.find((v) => !v.archived) || versions[0];
  main.append(section("Versions", table([
    { label: "Version", value: (v) => h("a", { href: studioPath(route.ws, kind, v.name, v.version), "aria-current": v === current ? "true" : false }, v.version) },
    { label: "Labels", value: (v) => [v === latest ? h("span", { class: "pill" }, "latest") : null, v.stage ? h("span", { class: "pill" }, v.stage) : null, v.archived ? h("span", { class: "pill" }, "archived") : null] },
    { label: "Created", value: (v) => fmtTime(v.creation_context?.created_at) },
    { label: "Description", value: (v) => v.description || "" },
  ], versions, { rowHref: (v) => studioPath(route.ws, kind, v.name, v.version) })));

  main.append(h("h2", { class: "version-title" }, `Version ${current.version}`));
  main.append(h("div", { class: "cols" },
    section("Details", facts([
      ["Type", current.type],
      ["Display name", current.display_name],
      ["Description", current.description],
      ["Stage", current.stage],
      ["Path", current.path ? refLink(route.ws, current.path) : ""],
      ["Image", current.image],
      ["Environment", typeof current.environment === "string" ? refLink(route.ws, current.environment, "environments") : ""],
      ["Created", fmtTime(current.creation_context?.created_at)],
      ["Created by", current.creation_context?.created_by],
      ["Tags", tagPills(current.tags)],
    ])),
    section("Lineage", lineage(route, current))));
  if (current.conda_file || current.command || current.inputs) {
    const spec = Object.fromEntries(["conda_file", "build", "command", "inputs", "outputs", "environment", "code"].filter((k) => current[k] !== undefined).map((k) => [k, current[k]]));
    main.append(section("Spec", h("pre", { class: "code" }, JSON.stringify(spec, null, 2))));
  }
  const where = datastorePath(current.path);
  if (where) {
    const box = section("Files", h("p", { class: "muted" }, "Loading…"));
    main.append(box);
    fileBrowser(route.ws, where.datastore, where.path).then(
      (el) => box.replaceChildren(h("h2", {}, "Files"), el),
      (error) => box.replaceChildren(h("h2", {}, "Files"), empty(`Files not readable: ${error.message}`)),
    );
  }
}

const LINEAGE_KIND = { models: "model", data: "data", environments: "environment", components: "component" };

// Which job produced this version and which jobs used it (the server scans the newest 20,000 jobs).
function lineage(route, asset) {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  get(`${ws(route.ws)}/studio/lineage`, { kind: LINEAGE_KIND[route.kind], name: asset.name, version: asset.version }).then((body) => {
    const made = body.produced_by;
    const used = body.used_by || [];
    clear(box,
      h("p", {}, "Produced by: ", made ? [h("a", { href: studioPath(route.ws, "jobs", made.job) }, made.job), made.output ? ` (output ${made.output})` : ""] : h("span", { class: "muted" }, "no job (uploaded or registered)")),
      h("p", {}, used.length ? `Used by ${used.length}${body.used_by_truncated ? "+" : ""} job${used.length === 1 ? "" : "s"}:` : "Used by no job yet."),
      used.length ? table([
        { label: "Job", value: (u) => h("a", { href: studioPath(route.ws, "jobs", u.job) }, u.job) },
        { label: "Input", value: (u) => u.input || "" },
        { label: "Status", value: (u) => statusBadge(u.status) },
        { label: "Created", value: (u) => fmtTime(u.created) },
      ], used, { rowHref: (u) => studioPath(route.ws, "jobs", u.job) }) : null,
    );
  }, (error) => box.replaceChildren(empty(`Lineage not available: ${error.message}`)));
  return box;
}

async function renderList(main, route) {
  const { kind } = route;
  main.append(h("h1", {}, TITLES[kind]));
  // One row per name: its newest version.
  const byName = new Map();
  for (const a of await listAll(`${ws(route.ws)}/${kind}`, {}, 2000)) {
    const seen = byName.get(a.name);
    if (!seen || (Number(a.version) || 0) > (Number(seen.version) || 0)) byName.set(a.name, a);
  }
  const rows = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (!rows.length) {
    main.append(empty(`No ${TITLES[kind].toLowerCase()} in this workspace yet.`));
    return;
  }
  main.append(table([
    { label: "Name", value: (a) => h("a", { href: studioPath(route.ws, kind, a.name) }, a.name) },
    { label: "Latest version", value: (a) => a.latest_version || a.version || "" },
    { label: "Type", value: (a) => a.type || "" },
    { label: "Description", value: (a) => a.description || "" },
    { label: "Tags", value: (a) => tagPills(a.tags) },
    { label: "Created", value: (a) => fmtTime(a.creation_context?.created_at) },
  ], rows, { rowHref: (a) => studioPath(route.ws, kind, a.name) }));
}
