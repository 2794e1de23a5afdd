// Links from the references jobs carry (azureml:name:version, azureml://jobs/..., datastores) to pages.

import { h } from "./dom.js";

const MODEL_TYPES = new Set(["custom_model", "mlflow_model", "triton_model"]);

export function studioPath(ws, ...parts) {
  return `/studio/workspaces/${encodeURIComponent(ws)}/${parts.filter((p) => p !== undefined && p !== null && p !== "").map((p) => encodeURIComponent(String(p))).join("/")}`;
}

// The studio page of a reference, or null. `kind` is the asset kind it stands for ("data", "models"...).
export function refHref(ws, ref, kind = "data") {
  if (typeof ref !== "string") return null;
  let m = ref.match(/^azureml:\/\/jobs\/([^/]+)\/outputs\/(.+)$/);
  if (m) return studioPath(ws, "jobs", m[1]) + "?tab=overview";
  m = ref.match(/^azureml:\/\/datastores\/([^/]+)\/paths\/(.*)$/);
  if (m) return studioPath(ws, "datastores", m[1]);
  m = ref.match(/^azureml:([^:/@]+)(?::([^:/@]+)|@(.+))?$/);
  if (m) return studioPath(ws, kind, m[1], m[2]);
  return null;
}

export function refLink(ws, ref, kind = "data") {
  const href = refHref(ws, ref, kind);
  return href ? h("a", { href }, ref) : h("code", {}, String(ref));
}

export function ioKind(io) {
  return MODEL_TYPES.has(io?.type) ? "models" : "data";
}

// An input or output row: its type, where it points, and the asset it became (outputs with name).
export function ioLinks(ws, io) {
  if (io === null || io === undefined) return "";
  if (typeof io !== "object") return h("code", {}, String(io));
  const kind = ioKind(io);
  const parts = [];
  if (io.type) parts.push(h("span", { class: "pill" }, io.type));
  if (io.path) parts.push(" ", refLink(ws, io.path, kind));
  if (io.value !== undefined) parts.push(" ", h("code", {}, String(io.value)));
  if (io.name) parts.push(" → ", h("a", { href: studioPath(ws, kind, io.name, io.version) }, `${io.name}${io.version ? `:${io.version}` : ""}`));
  return h("span", {}, parts);
}
