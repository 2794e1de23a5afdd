// The jobs table: status, duration, compute, tags and chosen metric/param columns; filters by
// status, experiment, tag and an MLflow expression; sort by any column; pages; pick runs to compare.

import { columnKeys, experiments, searchJobs } from "../jobsearch.js";
import { TERMINAL, durationOf, errorBox, fmtDuration, fmtNumber, fmtTime, h, navigate, statusBadge, table, tagPills } from "../dom.js";

const STATUSES = ["", "Running", "Queued", "Completed", "Failed", "Canceled"];
const PAGE = 50;
const REFRESH_MS = 5000;

function state(params) {
  const [key, dir] = (params.get("order") || "created_at desc").split(" ");
  return {
    status: params.get("status") || "",
    experiment: params.get("experiment") || "",
    tag: params.get("tag") || "",
    filter: params.get("filter") || "",
    archived: params.get("archived") === "1",
    order: { key, desc: dir !== "asc" },
    columns: (params.get("columns") || "").split(",").filter(Boolean),
    page_token: params.get("page") || "",
    pages: (params.get("pages") || "").split(",").filter(Boolean),
  };
}

function urlOf(route, q) {
  const p = new URLSearchParams();
  for (const key of ["status", "experiment", "tag", "filter"]) if (q[key]) p.set(key, q[key]);
  if (!(q.order.key === "created_at" && q.order.desc)) p.set("order", `${q.order.key} ${q.order.desc ? "desc" : "asc"}`);
  if (q.columns.length) p.set("columns", q.columns.join(","));
  if (q.archived) p.set("archived", "1");
  if (q.page_token) p.set("page", q.page_token);
  if (q.pages.length) p.set("pages", q.pages.join(","));
  const text = p.toString();
  return `/studio/workspaces/${encodeURIComponent(route.ws)}/jobs${text ? `?${text}` : ""}`;
}

export async function render(main, route, params) {
  const q = state(params);
  const go = (changes) => navigate(urlOf(route, { ...q, page_token: "", pages: [], ...changes }));
  const expList = await experiments(route.ws);

  main.append(h("h1", {}, q.experiment ? `Jobs · ${q.experiment}` : "Jobs"));
  const statusSel = h("select", { name: "status", "aria-label": "Status" }, STATUSES.map((s) => h("option", { value: s, selected: s === q.status }, s || "Any status")));
  const expSel = h("select", { name: "experiment", "aria-label": "Experiment" }, h("option", { value: "" }, "All experiments"), expList.map((e) => h("option", { value: e.name, selected: e.name === q.experiment }, e.name)));
  const tagBox = h("input", { name: "tag", type: "search", placeholder: "tag or tag=value", value: q.tag, "aria-label": "Tag" });
  const filterBox = h("input", { name: "filter", type: "search", placeholder: "metrics.acc > 0.9 and params.lr = '0.1'", value: q.filter, "aria-label": "Filter expression", "data-filter-box": "", class: "grow" });
  const archivedBox = h("input", { type: "checkbox", name: "archived", checked: q.archived });
  const form = h(
    "form",
    { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); go({ status: statusSel.value, experiment: expSel.value, tag: tagBox.value.trim(), filter: filterBox.value.trim(), archived: archivedBox.checked }); } },
    statusSel, expSel, tagBox, filterBox, h("label", {}, archivedBox, " archived too"), h("button", { type: "submit" }, "Apply"),
    h("button", { type: "button", class: "secondary", onclick: () => go({ status: "", experiment: "", tag: "", filter: "" }) }, "Clear"),
  );
  statusSel.addEventListener("change", () => form.requestSubmit());
  expSel.addEventListener("change", () => form.requestSubmit());
  archivedBox.addEventListener("change", () => form.requestSubmit());
  main.append(form);

  const results = h("div", { class: "results", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  main.append(results);
  let page;
  let keys;
  try {
    [page, keys] = await Promise.all([searchJobs(route.ws, { ...q, max_results: PAGE, archived: q.archived ? "all" : undefined }), columnKeys(route.ws, q.experiment)]);
  } catch (error) {
    results.replaceChildren(errorBox(error));
    return;
  }

  const selected = new Set();
  const compareBtn = h("button", { type: "button", disabled: true, onclick: () => navigate(`/studio/workspaces/${encodeURIComponent(route.ws)}/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`) }, "Compare selected");
  const updateCompare = () => {
    compareBtn.disabled = selected.size < 2 || selected.size > 20;
    compareBtn.textContent = `Compare selected (${selected.size})`;
  };

  // The column picker: metric and param keys seen on this page, plus those already chosen.
  const choices = [...new Set([...q.columns, ...keys.metrics.map((k) => `metrics.${k}`), ...keys.params.map((k) => `params.${k}`)])];
  const picker = h("details", { class: "columns" }, h("summary", {}, "Columns"),
    choices.length ? choices.map((c) => h("label", {}, h("input", { type: "checkbox", checked: q.columns.includes(c), onchange: (e) => go({ columns: e.target.checked ? [...q.columns, c] : q.columns.filter((x) => x !== c), page_token: q.page_token, pages: q.pages }) }), " ", c)) : h("p", { class: "muted" }, "No metrics or params logged yet."));

  const columns = [
    { label: h("span", { class: "sr-only" }, "Select"), value: (row) => h("input", { type: "checkbox", "aria-label": `select ${row.name}`, checked: selected.has(row.name), onchange: (e) => { e.target.checked ? selected.add(row.name) : selected.delete(row.name); updateCompare(); } }) },
    { label: "Name", sort: "name", value: (row) => [h("a", { href: `/studio/workspaces/${encodeURIComponent(route.ws)}/jobs/${encodeURIComponent(row.name)}` }, row.display_name || row.name), row.archived ? h("span", { class: "pill" }, "archived") : null] },
    { label: "Status", sort: "status", value: (row) => statusBadge(row.status) },
    { label: "Experiment", value: (row) => row.experiment_name || "", cls: "nowrap" },
    { label: "Type", value: (row) => row.type || "" },
    { label: "Compute", value: (row) => row.compute || "" },
    { label: "Created", sort: "created_at", value: (row) => fmtTime(row.created_at), cls: "nowrap" },
    { label: "Duration", sort: "duration", value: (row) => fmtDuration(durationOf(row)), cls: "num" },
    ...(page.rows.some((row) => row.user) ? [{ label: "User", value: (row) => row.user || "" }] : []),
    { label: "Tags", value: (row) => tagPills(row.tags) },
    ...q.columns.map((c) => {
      const [group, ...rest] = c.split(".");
      const key = rest.join(".");
      return { label: key, sort: c, cls: "num", value: (row) => fmtNumber((row[group] || {})[key]) };
    }),
  ];
  const onSort = (key) => go({ order: { key, desc: q.order.key === key ? !q.order.desc : true } });
  const gridOf = (rows) => (rows.length
    ? table(columns, rows, { rowHref: (row) => `/studio/workspaces/${encodeURIComponent(route.ws)}/jobs/${encodeURIComponent(row.name)}`, onSort, sort: q.order })
    : h("p", { class: "muted" }, "No jobs match."));
  const grid = h("div", {}, gridOf(page.rows));

  const prev = h("button", { type: "button", class: "secondary", disabled: !q.page_token, onclick: () => {
    const pages = q.pages.slice();
    const back = pages.pop();
    navigate(urlOf(route, { ...q, page_token: !back || back === "-" ? "" : back, pages }));
  } }, "← Previous");
  const next = h("button", { type: "button", class: "secondary", disabled: !page.next_page_token, onclick: () => navigate(urlOf(route, { ...q, page_token: page.next_page_token, pages: [...q.pages, q.page_token || "-"] })) }, "Next →");
  updateCompare();
  results.replaceChildren(
    h("div", { class: "toolbar" }, h("span", { class: "muted", "data-count": page.rows.length }, page.total === undefined ? `${page.rows.length} shown` : `${page.total.toLocaleString()}${page.totalIsLowerBound ? "+" : ""} job${page.total === 1 ? "" : "s"} · ${page.rows.length} shown`), picker, compareBtn),
    grid,
    h("nav", { class: "pager", "aria-label": "Pages" }, prev, next),
  );
  // For benchmarks/studio.py: navigation start to the table on screen.
  performance.mark("studio:jobs-rendered");

  // While a job on this page is unfinished, the page is asked for again every REFRESH_MS and the
  // table redrawn when it changed (not while the keyboard is in it, so focus is not lost).
  let timer = null;
  let last = JSON.stringify(page.rows);
  const refresh = async () => {
    timer = null;
    try {
      const again = await searchJobs(route.ws, { ...q, max_results: PAGE, archived: q.archived ? "all" : undefined });
      const text = JSON.stringify(again.rows);
      if (text !== last && !grid.contains(document.activeElement)) {
        last = text;
        page = again;
        grid.replaceChildren(gridOf(again.rows));
      }
    } catch {
      // the next round tries again
    }
    schedule();
  };
  const schedule = () => {
    if (page.rows.some((row) => !TERMINAL.has(row.status))) timer = setTimeout(refresh, REFRESH_MS);
  };
  schedule();
  return () => timer && clearTimeout(timer);
}
