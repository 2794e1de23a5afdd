// A job's log files (every rank's), followed while the job runs: only the new bytes are fetched.

import { get, getRaw, runFolder } from "../api.js";
import { empty, h } from "../dom.js";

const FOLLOW_MS = 1000;
const MAX_SHOWN = 2 * 1024 * 1024; // characters kept on screen per file; the start is dropped past it

async function logFiles(live) {
  const body = await get(`workspaces/${encodeURIComponent(live.ws)}/datastores/workspaceartifactstore/files`, { path: runFolder(live.name) }).catch(() => ({ value: [] }));
  return (body.value || [])
    .map((f) => f.path)
    .filter((p) => /(^|\/)(user_logs|system_logs|azureml-logs|logs)\//.test(p) || p.endsWith(".log") || p.endsWith("_log.txt"))
    .sort((a, b) => (a === "user_logs/std_log.txt" ? -1 : b === "user_logs/std_log.txt" ? 1 : a.localeCompare(b)));
}

export async function renderLogs(panel, live) {
  const select = h("select", { "aria-label": "Log file" });
  const follow = h("input", { type: "checkbox", checked: true });
  const pre = h("pre", { class: "log", tabindex: "0", "aria-label": "log", "aria-live": "off" });
  const state = h("span", { class: "muted" });
  panel.append(h("div", { class: "toolbar" }, h("label", {}, "File ", select), h("label", {}, follow, " Follow"), state), pre);

  let files = [];
  let current = null;
  let offset = 0;
  let decoder = new TextDecoder();
  let timer = null;
  let stopped = false;

  const refreshFiles = async () => {
    const found = await logFiles(live);
    if (!found.length) found.push("user_logs/std_log.txt");
    if (found.join("\n") === files.join("\n")) return;
    files = found;
    const keep = select.value;
    select.replaceChildren(...files.map((f) => h("option", { value: f, selected: f === (keep || current) }, f)));
    if (!current) switchTo(files[0]);
  };

  const read = async () => {
    const path = current;
    for (;;) {
      const response = await getRaw(`${live.path}/logs`, { path, offset, limit: 262144 });
      const bytes = await response.arrayBuffer();
      const text = decoder.decode(bytes, { stream: true });
      const size = Number(response.headers.get("X-Log-Size") || 0);
      if (path !== current) return;
      offset += bytes.byteLength;
      if (text) {
        const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        if (pre.firstChild && pre.firstChild.nodeType !== Node.TEXT_NODE) pre.replaceChildren();
        pre.append(text);
        if (pre.textContent.length > MAX_SHOWN) pre.textContent = pre.textContent.slice(-MAX_SHOWN);
        if (follow.checked && atBottom) pre.scrollTop = pre.scrollHeight;
      }
      if (!bytes.byteLength || offset >= size) break;
    }
    if (!pre.textContent) pre.replaceChildren(empty(live.running() ? "Nothing logged yet." : "This log is empty."));
  };

  function switchTo(path) {
    current = path;
    offset = 0;
    decoder = new TextDecoder();
    pre.replaceChildren();
    select.value = path;
    read().catch((error) => { state.textContent = error.message; });
  }
  select.addEventListener("change", () => switchTo(select.value));

  const tick = async () => {
    if (stopped) return;
    try {
      await refreshFiles();
      await read();
    } catch (error) {
      state.textContent = error.message;
    }
    state.textContent = live.running() ? (follow.checked ? "following…" : "paused") : "";
    if (!stopped && live.running() && follow.checked) timer = setTimeout(tick, FOLLOW_MS);
    else timer = null;
  };
  follow.addEventListener("change", () => { if (follow.checked && !timer) tick(); });
  await refreshFiles();
  await read().catch(() => {});
  if (live.running()) timer = setTimeout(tick, FOLLOW_MS);
  // The job may end between ticks: one last read gets the final lines.
  const unsubscribe = live.subscribe(() => { if (!timer && !stopped) tick(); });
  return () => {
    stopped = true;
    unsubscribe();
    if (timer) clearTimeout(timer);
  };
}
