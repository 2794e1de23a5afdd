// The studio's router: one page module per path (docs/studio.md lists them). Each page's render()
// gets the <main> element and the route, and may return a function that stops its timers.

import { get, post } from "./api.js";
import { clear, h, navigate } from "./dom.js";

const ASSET_KINDS = ["models", "data", "environments", "components"];
const RESOURCE_KINDS = ["computes", "datastores", "online-endpoints", "batch-endpoints"];

const NAV = [
  ["jobs", "Jobs"],
  ["compare", "Compare"],
  ["models", "Models"],
  ["data", "Data"],
  ["environments", "Environments"],
  ["components", "Components"],
  ["computes", "Compute"],
  ["datastores", "Datastores"],
  ["online-endpoints", "Online endpoints"],
  ["batch-endpoints", "Batch endpoints"],
];

function route(pathname) {
  const parts = pathname.replace(/^\/studio\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "login") return { page: "login" };
  if (parts[0] !== "workspaces" || !parts[1]) return { page: "workspaces" };
  const ws = parts[1];
  const section = parts[2] || "jobs";
  const rest = parts.slice(3);
  if (section === "jobs") return rest.length ? { page: "job", ws, name: rest[0] } : { page: "jobs", ws };
  if (section === "compare") return { page: "compare", ws };
  if (ASSET_KINDS.includes(section)) return { page: "asset", ws, kind: section, name: rest[0], version: rest[1] };
  if (RESOURCE_KINDS.includes(section)) return { page: "resource", ws, kind: section, name: rest[0] };
  return { page: "notfound", ws };
}

const PAGES = {
  workspaces: () => import("./pages/workspaces.js"),
  jobs: () => import("./pages/jobs.js"),
  job: () => import("./pages/job.js"),
  compare: () => import("./pages/compare.js"),
  asset: () => import("./pages/assets.js"),
  resource: () => import("./pages/resources.js"),
  login: () => import("./pages/login.js"),
};

function renderNav(current) {
  const nav = document.getElementById("nav");
  if (!current.ws) {
    clear(nav);
    return;
  }
  const section = current.page === "job" ? "jobs" : current.page === "asset" || current.page === "resource" ? current.kind : current.page;
  clear(
    nav,
    h("a", { href: "/studio/", class: "ws", title: "Switch workspace" }, current.ws),
    NAV.map(([key, label]) =>
      h("a", {
        href: `/studio/workspaces/${encodeURIComponent(current.ws)}/${key}`,
        "aria-current": key === section ? "page" : false,
      }, label),
    ),
  );
}

// Who the studio is signed in as, with a sign-out button (ends the session on the server too).
async function showWho() {
  const box = document.getElementById("who");
  if (!box || location.pathname.startsWith("/studio/login")) return;
  try {
    const me = await get("studio/me");
    clear(box,
      h("span", { class: "muted", title: me.admin ? "administrator" : "" }, me.user || me.principal),
      h("button", { type: "button", class: "secondary small", onclick: async () => {
        await post("studio/logout").catch(() => null);
        location.assign("/studio/login");
      } }, "Sign out"));
  } catch {
    // not signed in: api.js is already on its way to the login page
  }
}

let dispose = null;
let generation = 0;

async function show() {
  const main = document.getElementById("main");
  const current = route(location.pathname);
  const mine = ++generation;
  if (typeof dispose === "function") dispose();
  dispose = null;
  renderNav(current);
  if (current.page === "notfound") {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "No studio page at ", h("code", {}, location.pathname)));
    return;
  }
  try {
    const module = await PAGES[current.page]();
    if (mine !== generation) return;
    clear(main);
    const params = new URLSearchParams(location.search);
    dispose = await module.render(main, current, params);
  } catch (error) {
    if (mine !== generation) return;
    if (error?.status === 401) return; // api.js is already on its way to the login page
    const title = error?.status === 403 ? "No access" : error?.status === 404 ? "Not found" : "Something went wrong";
    clear(main, h("h1", {}, title), h("p", { class: "error", role: "alert" }, String(error?.message || error)),
      error?.status === 403 ? h("p", {}, "Your token has no role here. ", h("a", { href: "/studio/" }, "Pick another workspace"), ".") : null);
  }
  const title = main.querySelector("h1");
  document.title = title ? `${title.textContent} · Shoal studio` : "Shoal studio";
}

// Links inside the app change the page without a reload; others (files, API downloads) go out.
document.addEventListener("click", (event) => {
  const a = event.target.closest("a[href]");
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  // getAttribute: SVG links (the pipeline graph's steps) have no string .href or .target.
  if (a.getAttribute("target") || a.hasAttribute("download")) return;
  const url = new URL(a.getAttribute("href"), location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/studio") || url.pathname.startsWith("/studio/static/")) return;
  if (url.pathname.startsWith("/studio/login")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
  document.getElementById("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
});

// Keyboard: "/" focuses the page's filter box; "g" then a letter jumps to a section.
let pendingG = false;
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input,textarea,select,[contenteditable]");
  if (typing || event.metaKey || event.ctrlKey || event.altKey) return;
  if (event.key === "/") {
    const box = document.querySelector("[data-filter-box]");
    if (box) {
      event.preventDefault();
      box.focus();
    }
    return;
  }
  const current = route(location.pathname);
  if (pendingG && current.ws) {
    pendingG = false;
    const jump = { j: "jobs", c: "compare", m: "models", d: "data", e: "environments", o: "components", u: "computes", s: "datastores" }[event.key];
    if (jump) navigate(`/studio/workspaces/${encodeURIComponent(current.ws)}/${jump}`);
    return;
  }
  pendingG = event.key === "g";
});

window.addEventListener("popstate", show);
window.addEventListener("studio:navigate", show);
showWho();
show();
