// Calls to the Shoal REST API with the session cookie. State-changing calls carry the CSRF header
// the server checks against the readable `shoal_csrf` cookie (docs/studio.md).

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    q.set(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body?.error?.message || body?.message || body?.detail || message;
    if (typeof message !== "string") message = JSON.stringify(message);
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

// A fetch that answers 401 means the session is gone: the login page says how to get a new one.
async function send(method, path, { params, body, raw } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-Shoal-CSRF"] = cookie("shoal_csrf");
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${path.startsWith("/") ? "" : API + "/"}${path}${query(params)}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    const back = encodeURIComponent(location.pathname + location.search);
    location.assign(`/studio/login?next=${back}`);
    throw new ApiError(401, "signed out");
  }
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, params) => send("GET", path, { params });
export const post = (path, body, params) => send("POST", path, { body, params });
export const patch = (path, body) => send("PATCH", path, { body });
export const getRaw = (path, params) => send("GET", path, { params, raw: true });

export const ws = (workspace) => `workspaces/${encodeURIComponent(workspace)}`;
export const mlflow = (workspace, call) => `${ws(workspace)}/mlflow/api/2.0/mlflow/${call}`;

// Every page of a list (the REST lists page with next_page_token), up to `limit` rows.
export async function listAll(path, params = {}, limit = 1000) {
  const rows = [];
  let token = null;
  do {
    const page = await get(path, { ...params, page_token: token || undefined });
    rows.push(...(page.value || []));
    token = page.next_page_token;
  } while (token && rows.length < limit);
  return rows;
}

// The artifact datastore keeps each job's logs and outputs under this folder.
export const runFolder = (name) => `ExperimentRun/dcid.${name}`;

// A conditional GET: {changed: false} on 304, else {changed: true, etag, body}. `no-store` keeps
// the browser's cache from answering the 304 with the old body.
export async function getIfChanged(path, etag) {
  const headers = { Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(`${API}/${path}`, { headers, credentials: "same-origin", cache: "no-store" });
  if (response.status === 304) return { changed: false, etag };
  if (response.status === 401) {
    location.assign(`/studio/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, "signed out");
  }
  if (!response.ok) throw await errorOf(response);
  return { changed: true, etag: response.headers.get("ETag"), body: await response.json() };
}
