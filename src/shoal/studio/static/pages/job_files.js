// A job's code snapshot, browsable file by file, and its environment (spec and build log).

import { get, getRaw, runFolder, ws } from "../api.js";
import { empty, errorBox, h, section, table } from "../dom.js";
import { refLink } from "../refs.js";

const MAX_VIEW = 512 * 1024; // bytes shown of one file; bigger files are offered as a download

export function datastorePath(uri) {
  const m = typeof uri === "string" && uri.match(/^azureml:\/\/datastores\/([^/]+)\/paths\/(.*)$/);
  return m ? { datastore: m[1], path: m[2].replace(/\/$/, "") } : null;
}

// A folder of a datastore (an asset's files): a file list and a viewer.
export async function fileBrowser(workspace, datastore, folder) {
  const base = `${ws(workspace)}/datastores/${encodeURIComponent(datastore)}`;
  const listing = await get(`${base}/files`, { path: folder });
  const full = (file) => (listing.is_dir ? `${folder}/${file.path}` : folder);
  return browser((listing.value || []).slice(0, 5000), async (file) => {
    const response = await getRaw(`${base}/content`, { path: full(file) });
    return new Uint8Array(await response.arrayBuffer());
  }, (file) => `/api/v1/${base}/content?path=${encodeURIComponent(full(file))}`);
}

// files: [{path, size}]; bytesOf(file) -> Uint8Array; hrefOf(file) -> a download link.
function browser(files, bytesOf, hrefOf) {
  const viewer = h("div", { class: "file-view" }, empty("Pick a file."));
  const open = async (file) => {
    const href = hrefOf(file);
    if (file.size > MAX_VIEW) {
      viewer.replaceChildren(h("p", {}, `${file.path} is ${file.size} bytes: `, h("a", { href, download: file.path.split("/").pop() }, "download it")));
      return;
    }
    viewer.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const bytes = await bytesOf(file);
      const binary = bytes.slice(0, 8000).includes(0);
      viewer.replaceChildren(
        h("div", { class: "toolbar" }, h("strong", {}, file.path), h("a", { href, download: file.path.split("/").pop() }, "download")),
        binary ? empty("Binary file.") : h("pre", { class: "code", tabindex: "0", "data-file": file.path }, new TextDecoder().decode(bytes)),
      );
    } catch (error) {
      viewer.replaceChildren(errorBox(error));
    }
  };
  const list = h("ul", { class: "file-list", role: "list", "aria-label": "files" }, files.map((f) => h("li", {}, h("button", { type: "button", class: "link", "data-path": f.path, onclick: () => open(f) }, f.path), h("span", { class: "muted" }, ` ${f.size} B`))));
  if (files.length) setTimeout(() => open(files.find((f) => /\.(py|txt|md|ya?ml)$/.test(f.path)) || files[0]), 0);
  return h("div", { class: "browser" }, files.length ? list : empty("No files."), viewer);
}

// The snapshot's file list and each file come from the studio's code calls.
export async function renderCode(panel, live) {
  const job = live.job;
  if (!(job.code || job.trial?.code)) {
    panel.append(empty(job.type === "pipeline" ? "A pipeline's code is in its steps: see its graph or child jobs." : "This job has no code snapshot."));
    return;
  }
  const base = `${ws(live.ws)}/studio/jobs/${encodeURIComponent(live.name)}/code`;
  const listing = await get(base);
  panel.append(h("p", {}, "Snapshot ", h("code", {}, listing.asset || listing.uri), listing.truncated ? h("span", { class: "muted" }, " (first 5,000 files)") : ""));
  panel.append(browser(listing.files || [], async (file) => {
    const response = await getRaw(`${base}/file`, { path: file.path });
    return new Uint8Array(await response.arrayBuffer());
  }, (file) => `/api/v1/${base}/file?path=${encodeURIComponent(file.path)}`));
}

function specText(value) {
  return JSON.stringify(value, null, 2);
}

export async function renderEnvironment(panel, live) {
  const job = live.job;
  const env = job.environment || job.trial?.environment;
  if (!env) panel.append(empty("No environment on this job (a pipeline's steps have their own)."));
  else if (typeof env === "string") {
    panel.append(section("Environment", h("p", {}, refLink(live.ws, env, "environments"))));
    const m = env.match(/^azureml:([^:@]+)(?::([^:@]+)|@(.+))?$/);
    if (m) {
      const path = m[2] ? `versions/${encodeURIComponent(m[2])}` : `labels/${encodeURIComponent(m[3] || "latest")}`;
      const asset = await get(`${ws(live.ws)}/environments/${encodeURIComponent(m[1])}/${path}`).catch(() => null);
      if (asset) panel.append(section("Spec", h("pre", { class: "code" }, specText(asset))));
    }
  } else {
    panel.append(section("Spec", h("pre", { class: "code" }, specText(env))));
  }
  const build = h("pre", { class: "log", tabindex: "0" }, "Loading…");
  panel.append(section("Build log", build));
  const listing = await get(`${ws(live.ws)}/datastores/workspaceartifactstore/files`, { path: runFolder(live.name) }).catch(() => ({ value: [] }));
  const logs = (listing.value || []).filter((f) => f.path.startsWith("system_logs/") && /environment|build/.test(f.path));
  if (!logs.length) {
    build.textContent = "No build log (the job has not prepared its environment, or it ran on the host Python).";
    return;
  }
  const parts = await Promise.all(logs.map(async (f) => {
    const response = await getRaw(`${live.path}/logs`, { path: f.path, limit: 1048576 });
    return `# ${f.path}\n${await response.text()}`;
  }));
  build.textContent = parts.join("\n");
  if (logs.length > 1) panel.append(table([{ label: "File", value: (f) => f.path }, { label: "Bytes", value: (f) => f.size }], logs));
}
