// Small DOM helpers: element building, formatting of times and durations, status badges, tables.

export function h(tag, attrs = {}, ...children) {
  const el = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && !(el instanceof SVGElement) && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(["g", "path", "line", "rect", "circle", "text", "polyline", "title", "defs", "marker", "tspan"]);

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

export function fmtTime(iso) {
  if (!iso) return "";
  const date = typeof iso === "number" ? new Date(iso) : new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${Math.round(seconds % 60)}s`;
  const hrs = Math.floor(m / 60);
  return `${hrs}h ${m % 60}m`;
}

const ms = (t) => (typeof t === "number" ? t : t ? Date.parse(t) : null);

// Seconds a job ran (or has been running); rows of the studio search carry duration_ms and ms times.
export function durationOf(job) {
  if (typeof job.duration_ms === "number") return job.duration_ms / 1000;
  const start = ms(job.start_time);
  if (!start) return null;
  const end = ms(job.end_time) || Date.now();
  return (end - start) / 1000;
}

export function fmtNumber(value) {
  if (typeof value !== "number") return value === undefined || value === null ? "" : String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e9) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

export const TERMINAL = new Set(["Completed", "Failed", "Canceled", "NotResponding", "Paused"]);

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status || "unknown").toLowerCase()}` }, status || "?");
}

export function pill(text, attrs = {}) {
  return h("span", { class: "pill", ...attrs }, text);
}

export function tagPills(tags) {
  return Object.entries(tags || {}).map(([k, v]) => pill(v === "" ? k : `${k}: ${v}`));
}

// A definition list from [label, value] pairs, skipping empty values.
export function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(h("dt", {}, label), h("dd", {}, value));
  }
  return dl;
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, String(error?.message || error));
}

export function empty(text) {
  return h("p", { class: "muted" }, text);
}

// A table of rows; columns are {label, value(row) -> node|string, sort?: key}. Rows with `href`
// are reachable with the keyboard: Up/Down move between rows, Enter opens.
export function table(columns, rows, { rowHref, caption, onSort, sort } = {}) {
  const head = h(
    "tr",
    {},
    columns.map((col) => {
      if (!col.sort || !onSort) return h("th", { scope: "col" }, col.label);
      const active = sort && sort.key === col.sort;
      const arrow = active ? (sort.desc ? " ▼" : " ▲") : "";
      return h(
        "th",
        { scope: "col", "aria-sort": active ? (sort.desc ? "descending" : "ascending") : "none" },
        h("button", { class: "sort", type: "button", onclick: () => onSort(col.sort) }, col.label + arrow),
      );
    }),
  );
  const body = h("tbody");
  for (const row of rows) {
    const href = rowHref ? rowHref(row) : null;
    const tr = h("tr", href ? { tabindex: "0", "data-href": href, class: "clickable" } : {});
    for (const col of columns) {
      const value = col.value(row);
      tr.append(h("td", col.cls ? { class: col.cls } : {}, value instanceof Node || Array.isArray(value) ? value : String(value ?? "")));
    }
    body.append(tr);
  }
  const t = h("table", { class: "grid" }, caption ? h("caption", {}, caption) : null, h("thead", {}, head), body);
  body.addEventListener("click", (event) => {
    const tr = event.target.closest("tr[data-href]");
    if (!tr || event.target.closest("a,button,input,label")) return;
    navigate(tr.dataset.href);
  });
  body.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr[data-href]");
    if (!tr) return;
    if (event.key === "Enter") navigate(tr.dataset.href);
    else if (event.key === "ArrowDown" || event.key === "j") (tr.nextElementSibling || tr).focus();
    else if (event.key === "ArrowUp" || event.key === "k") (tr.previousElementSibling || tr).focus();
    else return;
    event.preventDefault();
  });
  return h("div", { class: "table-wrap" }, t);
}

// In-app navigation without a reload (app.js listens for it).
export function navigate(href) {
  history.pushState({}, "", href);
  window.dispatchEvent(new Event("studio:navigate"));
}

export function tabs(names, initial, render) {
  const bar = h("div", { class: "tabs", role: "tablist" });
  const panel = h("div", { class: "tab-panel", role: "tabpanel" });
  const buttons = names.map((name) =>
    h("button", {
      type: "button",
      role: "tab",
      id: `tab-${name.toLowerCase().replace(/\W+/g, "-")}`,
      "aria-selected": "false",
      onclick: () => select(name),
    }, name),
  );
  bar.append(...buttons);
  bar.addEventListener("keydown", (event) => {
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (index + 1) % buttons.length;
    if (event.key === "ArrowLeft") next = (index - 1 + buttons.length) % buttons.length;
    if (next === null) return;
    event.preventDefault();
    buttons[next].focus();
    select(names[next]);
  });
  let cleanup = null;
  function select(name) {
    buttons.forEach((b, i) => {
      const on = names[i] === name;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    });
    if (typeof cleanup === "function") cleanup();
    panel.replaceChildren();
    cleanup = render(name, panel);
    const url = new URL(location.href);
    url.searchParams.set("tab", name.toLowerCase());
    history.replaceState(history.state, "", url);
  }
  select(names.find((n) => n.toLowerCase() === (initial || "").toLowerCase()) || names[0]);
  return { el: h("div", {}, bar, panel), select, dispose: () => typeof cleanup === "function" && cleanup() };
}
