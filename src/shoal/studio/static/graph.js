// A pipeline's steps as an SVG graph: columns by dependency depth, edges from the outputs a step
// reads, each node coloured by its child job's status and marked when it was reused.

import { h } from "./dom.js";

const BIND = /\$\{\{\s*parent\.jobs\.([\w-]+)\.outputs\.[\w-]+\s*\}\}/g;

export function stepEdges(steps) {
  const edges = [];
  for (const [name, step] of Object.entries(steps || {})) {
    const text = JSON.stringify(step?.inputs || {});
    for (const m of text.matchAll(BIND)) if (steps[m[1]] && !edges.some((e) => e[0] === m[1] && e[1] === name)) edges.push([m[1], name]);
  }
  return edges;
}

function depths(names, edges) {
  const depth = Object.fromEntries(names.map((n) => [n, 0]));
  // Longest path from a source; a cycle (refused by the server anyway) stops after n rounds.
  for (let round = 0; round < names.length; round++) {
    let changed = false;
    for (const [a, b] of edges) if (depth[b] < depth[a] + 1) { depth[b] = depth[a] + 1; changed = true; }
    if (!changed) break;
  }
  return depth;
}

const W = 170;
const H = 54;
const GAP_X = 70;
const GAP_Y = 22;

// steps: {name: spec}; children: {stepName: childJob}; hrefOf(child) -> link
export function pipelineGraph(steps, children, hrefOf) {
  const names = Object.keys(steps || {});
  const edges = stepEdges(steps);
  const depth = depths(names, edges);
  const columns = [];
  for (const n of names) (columns[depth[n]] ||= []).push(n);
  const pos = {};
  columns.forEach((col, x) => col.forEach((n, y) => { pos[n] = { x: 10 + x * (W + GAP_X), y: 10 + y * (H + GAP_Y) }; }));
  const width = 20 + columns.length * (W + GAP_X) - GAP_X;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  const svg = h("svg", { class: "pipeline-graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-label": "pipeline graph" });
  const marker = h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, h("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "edge-head" }));
  svg.append(h("defs", {}, marker));
  for (const [a, b] of edges) {
    const p = pos[a];
    const q = pos[b];
    const x1 = p.x + W;
    const y1 = p.y + H / 2;
    const x2 = q.x;
    const y2 = q.y + H / 2;
    const mid = (x1 + x2) / 2;
    svg.append(h("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)", "data-edge": `${a}->${b}` }));
  }
  for (const n of names) {
    const child = children[n];
    const status = child?.status || "NotStarted";
    const reuse = child?.properties?.reuse;
    const reused = reuse?.reused === true;
    const label = `${n}: ${status}${reused ? " (reused)" : ""}${reuse?.reason ? ` — ${reuse.reason}` : ""}`;
    const node = h("g", { class: `node status-${status.toLowerCase()}${reused ? " reused" : ""}`, "data-step": n, "data-status": status, transform: `translate(${pos[n].x},${pos[n].y})` },
      h("title", {}, label),
      h("rect", { width: W, height: H, rx: 8 }),
      h("text", { x: 12, y: 22, class: "node-name" }, n.length > 22 ? `${n.slice(0, 21)}…` : n),
      h("text", { x: 12, y: 41, class: "node-status" }, status + (reused ? " · reused" : "")));
    if (child && hrefOf) {
      // An SVG link (h() makes HTML <a>): focusable, and app.js routes its clicks.
      const a = document.createElementNS("http://www.w3.org/2000/svg", "a");
      a.setAttribute("href", hrefOf(child));
      a.setAttribute("aria-label", label);
      a.append(node);
      svg.append(a);
    } else svg.append(node);
  }
  return svg;
}
