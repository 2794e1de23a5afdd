// A job's log files (every rank's: std_log_process_N.txt and the rest), followed while the job
// runs. The page's live feed gives each file's size; only the new bytes are fetched.

import { get, getRaw, ws } from "../api.js";
import { empty, h } from "../dom.js";

const MAX_SHOWN = 2 * 1024 * 1024; // characters kept on screen; the start is dropped past it
const FIRST = "user_logs/std_log.txt";

// The user's logs first (std_log.txt, then each rank's in rank order), then the system's.
function order(paths) {
  const rank = (p) => (p === FIRST ? 0 : p.startsWith("user_logs/") ? 1 : 2);
  return [...paths].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b, undefined, { numeric: true }));
}

export async function renderLogs(panel, live) {
  const select = h("select", { "aria-label": "Log file" });
  const follow = h("input", { type: "checkbox", checked: true });
  const pre = h("pre", { class: "log", tabindex: "0", "aria-label": "log" });
  const state = h("span", { class: "muted", role: "status" });
  const skipped = h("p", { class: "muted", hidden: true });
  panel.append(h("div", { class: "toolbar" }, h("label", {}, "File ", select), h("label", {}, follow, " Follow"), state), skipped, pre);

  let files = [];
  let sizes = {};
  let current = null;
  let offset = 0;
  let decoder = new TextDecoder();
  let reading = null;
  let stopped = false;

  const showFiles = (known) => {
    sizes = known || {};
    const found = order(Object.keys(sizes));
    if (!found.length) found.push(FIRST);
    if (found.join("\n") !== files.join("\n")) {
      files = found;
      select.replaceChildren(...files.map((f) => h("option", { value: f, selected: f === current }, f)));
    }
    if (!current || !files.includes(current)) switchTo(files[0]);
  };

  const readMore = async () => {
    const path = current;
    for (;;) {
      const response = await getRaw(`${live.path}/logs`, { path, offset, limit: 262144 });
      const bytes = await response.arrayBuffer();
      const size = Number(response.headers.get("X-Log-Size") || 0);
      if (path !== current || stopped) return;
      offset += bytes.byteLength;
      const text = decoder.decode(bytes, { stream: true });
      if (text) {
        const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        if (pre.firstElementChild) pre.replaceChildren();
        pre.append(text);
        if (pre.textContent.length > MAX_SHOWN) pre.textContent = pre.textContent.slice(-MAX_SHOWN);
        if (follow.checked && atBottom) pre.scrollTop = pre.scrollHeight;
      }
      if (!bytes.byteLength || offset >= size) break;
    }
    if (!pre.textContent) pre.replaceChildren(empty(live.running() ? "Nothing logged yet." : "This log is empty."));
  };
  // One read at a time; a request while one runs is folded into one more read after it.
  let again = false;
  const read = () => {
    if (reading) {
      again = true;
      return reading;
    }
    reading = readMore()
      .catch((error) => { state.textContent = error.message; })
      .finally(() => {
        reading = null;
        if (again) {
          again = false;
          read();
        }
      });
    return reading;
  };

  function switchTo(path) {
    current = path;
    // A long log opens at its end: its last MAX_SHOWN bytes (a broken first character is dropped).
    offset = Math.max(0, (sizes[path] || 0) - MAX_SHOWN);
    decoder = new TextDecoder();
    pre.replaceChildren();
    skipped.hidden = offset === 0;
    skipped.textContent = `The first ${offset.toLocaleString()} bytes of this log are not shown.`;
    select.value = path;
    read();
  }
  select.addEventListener("change", () => switchTo(select.value));

  const watch = live.watch || (await get(`${ws(live.ws)}/studio/jobs/${encodeURIComponent(live.name)}/watch`).catch(() => null));
  showFiles(watch?.logs);
  const status = () => { state.textContent = live.running() ? (follow.checked ? "following…" : "paused") : ""; };
  status();
  follow.addEventListener("change", () => { status(); if (follow.checked) read(); });
  const unsubscribe = live.subscribe((job, feed) => {
    status();
    if (feed?.logs) showFiles(feed.logs);
    const size = feed?.logs?.[current];
    if (follow.checked && (size === undefined || size > offset)) read();
  });
  return () => {
    stopped = true;
    unsubscribe();
  };
}
