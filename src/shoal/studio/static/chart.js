// Line charts in SVG: several series, x as step / relative time / wall-clock, EMA smoothing, log
// scale, drag to zoom (double-click or "0" resets), hover read-out, keyboard zoom and pan.

import { fmtNumber, h } from "./dom.js";

export const PALETTE = [
  "#2f6fde", "#e4572e", "#29a36a", "#a259d9", "#f2a541", "#17becf", "#d6336c", "#7f8c2e", "#8c564b", "#5c7cfa",
  "#e377c2", "#20c997", "#fd7e14", "#6f42c1", "#0ca678", "#c92a2a", "#1098ad", "#868e96", "#ae3ec9", "#f59f00",
];

const MARGIN = { top: 12, right: 14, bottom: 30, left: 58 };

function niceTicks(min, max, count) {
  if (!(max > min)) return [min];
  const span = max - min;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function logTicks(min, max) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) ticks.push(10 ** e);
  return ticks.filter((t) => t >= min / 1.0001 && t <= max * 1.0001);
}

export function smooth(values, weight) {
  if (!weight) return values;
  // TensorBoard's debiased exponential moving average: early points are not dragged toward 0.
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return v;
    last = last * weight + (1 - weight) * v;
    count++;
    return last / (1 - weight ** count);
  });
}

function xLabel(mode, value) {
  if (mode === "wall") {
    const d = new Date(value);
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  if (mode === "time") return value >= 120 ? `${(value / 60).toFixed(1)}m` : `${fmtNumber(value)}s`;
  return fmtNumber(value);
}

export class LineChart {
  // options: {title, height, onZoom(range|null)}; settings: {x: "step"|"time"|"wall", smoothing, log}
  constructor(options = {}) {
    this.options = options;
    this.settings = { x: "step", smoothing: 0, log: false };
    this.series = [];
    this.zoom = null; // [x0, x1] in the current x mode's units
    this.svg = h("svg", { class: "chart-svg", role: "img", "aria-label": options.title || "chart" });
    this.tip = h("div", { class: "chart-tip", hidden: true });
    this.note = h("p", { class: "chart-note muted" });
    this.el = h(
      "figure",
      { class: "chart", tabindex: "0", "data-metric": options.title || "" },
      options.title ? h("figcaption", {}, options.title) : null,
      h("div", { class: "chart-body" }, this.svg, this.tip),
      this.note,
    );
    this.width = 480;
    this.height = options.height || 220;
    this.observer = new ResizeObserver((entries) => {
      const width = Math.max(200, Math.floor(entries[0].contentRect.width));
      if (Math.abs(width - this.width) > 1) {
        this.width = width;
        this.draw();
      }
    });
    this.observer.observe(this.el);
    this.bindEvents();
  }

  dispose() {
    this.observer.disconnect();
  }

  setNote(text) {
    this.note.textContent = text;
  }

  setSeries(series) {
    this.series = series;
    this.draw();
  }

  setSettings(settings) {
    const xChanged = settings.x && settings.x !== this.settings.x;
    Object.assign(this.settings, settings);
    if (xChanged) this.zoom = null;
    this.draw();
  }

  // Points of a series as [x, y] in the current mode, y smoothed; the raw y kept for the read-out.
  project(series) {
    const pts = series.points;
    const t0 = pts.length ? pts[0].ts : 0;
    const xs = pts.map((p) => (this.settings.x === "step" ? p.step : this.settings.x === "time" ? (p.ts - t0) / 1000 : p.ts));
    const ys = smooth(pts.map((p) => p.value), this.settings.smoothing);
    return pts.map((p, i) => ({ x: xs[i], y: ys[i], raw: p.value, step: p.step, ts: p.ts, min: p.min, max: p.max }));
  }

  draw() {
    const { width, height } = this;
    const projected = this.series.map((s) => ({ ...s, pts: this.project(s) }));
    this.projected = projected;
    const all = projected.flatMap((s) => s.pts).filter((p) => Number.isFinite(p.y) && (!this.settings.log || p.y > 0));
    const svg = this.svg;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.replaceChildren();
    if (!all.length) {
      svg.append(h("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, this.settings.log ? "no positive values for a log scale" : "no points yet"));
      return;
    }
    let [x0, x1] = this.zoom || [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
    if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
    const visible = all.filter((p) => p.x >= x0 && p.x <= x1);
    const ys = (visible.length ? visible : all).flatMap((p) => [p.y, p.min, p.max]).filter((v) => Number.isFinite(v) && (!this.settings.log || v > 0));
    let y0 = Math.min(...ys);
    let y1 = Math.max(...ys);
    if (y0 === y1) {
      const pad = Math.abs(y0) * 0.1 || 1;
      y0 = this.settings.log ? y0 / 2 : y0 - pad;
      y1 = this.settings.log ? y1 * 2 : y1 + pad;
    }
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const log = this.settings.log;
    const ly0 = log ? Math.log10(y0) : y0;
    const ly1 = log ? Math.log10(y1) : y1;
    const sx = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
    const sy = (y) => MARGIN.top + plotH - (((log ? Math.log10(y) : y) - ly0) / (ly1 - ly0)) * plotH;
    this.scale = { x0, x1, sx, sy, plotW, plotH };

    const axes = h("g", { class: "axes" });
    const yTicks = log ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(2, Math.floor(plotH / 40)));
    for (const t of yTicks) {
      const y = sy(t);
      axes.append(h("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y, y2: y, class: "grid-line" }));
      axes.append(h("text", { x: MARGIN.left - 6, y: y + 4, "text-anchor": "end" }, fmtNumber(t)));
    }
    const xTicks = this.settings.x === "step"
      ? niceTicks(x0, x1, Math.max(2, Math.floor(plotW / 80))).filter((t) => Number.isInteger(t) || x1 - x0 < 10)
      : niceTicks(x0, x1, Math.max(2, Math.floor(plotW / 90)));
    for (const t of xTicks) {
      const x = sx(t);
      axes.append(h("line", { x1: x, x2: x, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4, class: "tick" }));
      axes.append(h("text", { x, y: height - 10, "text-anchor": "middle" }, xLabel(this.settings.x, t)));
    }
    axes.append(h("rect", { x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH, class: "frame" }));
    svg.append(axes);

    const clipId = `clip-${Math.random().toString(36).slice(2)}`;
    svg.append(h("defs", {}, (() => {
      const clip = document.createElementNS("http://www.w3.org/2000/svg", "clipPath");
      clip.id = clipId;
      clip.append(h("rect", { x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH }));
      return clip;
    })()));
    const lines = h("g", { "clip-path": `url(#${clipId})` });
    projected.forEach((s, index) => {
      const color = s.color || PALETTE[index % PALETTE.length];
      const ok = s.pts.filter((p) => Number.isFinite(p.y) && (!log || p.y > 0));
      // A down-sampled series: each bucket's min..max as a band, so spikes stay visible.
      if (s.sampled) {
        const band = ok.filter((p) => Number.isFinite(p.min) && Number.isFinite(p.max) && (!log || p.min > 0));
        if (band.length > 1) {
          const upper = band.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.max).toFixed(1)}`).join("");
          const lower = band.slice().reverse().map((p) => `L${sx(p.x).toFixed(1)},${sy(p.min).toFixed(1)}`).join("");
          lines.append(h("path", { d: `${upper}${lower}Z`, fill: color, class: "band" }));
        }
      }
      if (this.settings.smoothing) {
        const raw = ok.filter((p) => !log || p.raw > 0).map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.raw).toFixed(1)}`).join("");
        lines.append(h("path", { d: raw, stroke: color, class: "series raw" }));
      }
      const d = ok.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
      lines.append(h("path", { d, stroke: color, class: "series", "data-series": s.name, "data-points": ok.length }));
      if (ok.length === 1) lines.append(h("circle", { cx: sx(ok[0].x), cy: sy(ok[0].y), r: 3, fill: color }));
    });
    svg.append(lines);
    this.cursor = h("line", { class: "cursor", y1: MARGIN.top, y2: MARGIN.top + plotH, visibility: "hidden" });
    this.brush = h("rect", { class: "brush", y: MARGIN.top, height: plotH, visibility: "hidden" });
    svg.append(this.cursor, this.brush);
  }

  xAt(clientX) {
    const box = this.svg.getBoundingClientRect();
    const px = ((clientX - box.left) / box.width) * this.width;
    const { x0, x1, plotW } = this.scale;
    return x0 + ((px - MARGIN.left) / plotW) * (x1 - x0);
  }

  showTip(clientX) {
    if (!this.scale || !this.projected) return;
    const x = this.xAt(clientX);
    if (x < this.scale.x0 || x > this.scale.x1) return this.hideTip();
    const rows = [];
    this.projected.forEach((s, index) => {
      if (!s.pts.length) return;
      let best = s.pts[0];
      for (const p of s.pts) if (Math.abs(p.x - x) < Math.abs(best.x - x)) best = p;
      rows.push({ s, p: best, color: s.color || PALETTE[index % PALETTE.length] });
    });
    if (!rows.length) return this.hideTip();
    const px = this.scale.sx(rows[0].p.x);
    this.cursor.setAttribute("x1", px);
    this.cursor.setAttribute("x2", px);
    this.cursor.setAttribute("visibility", "visible");
    this.tip.replaceChildren(
      h("div", { class: "muted" }, `step ${rows[0].p.step} · ${new Date(rows[0].p.ts).toLocaleTimeString()}`),
      ...rows.map(({ s, p, color }) => h("div", {}, h("span", { class: "swatch", style: `background:${color}` }), `${s.name}: ${fmtNumber(p.raw)}`, this.settings.smoothing ? ` (smoothed ${fmtNumber(p.y)})` : "")),
    );
    this.tip.hidden = false;
    const left = (px / this.width) * this.svg.getBoundingClientRect().width;
    this.tip.style.left = `${Math.min(left + 12, this.svg.getBoundingClientRect().width - 180)}px`;
  }

  hideTip() {
    this.tip.hidden = true;
    if (this.cursor) this.cursor.setAttribute("visibility", "hidden");
  }

  setZoom(range) {
    this.zoom = range;
    this.draw();
    if (this.options.onZoom) this.options.onZoom(range, this.settings.x);
  }

  bindEvents() {
    let dragFrom = null;
    this.svg.addEventListener("pointerdown", (e) => {
      if (!this.scale) return;
      dragFrom = this.xAt(e.clientX);
      this.svg.setPointerCapture(e.pointerId);
    });
    this.svg.addEventListener("pointermove", (e) => {
      this.showTip(e.clientX);
      if (dragFrom === null) return;
      const a = this.scale.sx(dragFrom);
      const b = this.scale.sx(this.xAt(e.clientX));
      this.brush.setAttribute("x", Math.min(a, b));
      this.brush.setAttribute("width", Math.abs(b - a));
      this.brush.setAttribute("visibility", "visible");
    });
    this.svg.addEventListener("pointerup", (e) => {
      if (dragFrom === null) return;
      const to = this.xAt(e.clientX);
      const [a, b] = [Math.min(dragFrom, to), Math.max(dragFrom, to)];
      dragFrom = null;
      this.brush.setAttribute("visibility", "hidden");
      // A click (no real drag) is not a zoom.
      if (this.scale.sx(b) - this.scale.sx(a) > 4) this.setZoom([a, b]);
    });
    this.svg.addEventListener("pointerleave", () => this.hideTip());
    this.svg.addEventListener("dblclick", () => this.setZoom(null));
    this.el.addEventListener("keydown", (e) => {
      if (!this.scale) return;
      const { x0, x1 } = this.scale;
      const span = x1 - x0;
      let range = null;
      if (e.key === "+" || e.key === "=") range = [x0 + span / 4, x1 - span / 4];
      else if (e.key === "-") range = [x0 - span / 2, x1 + span / 2];
      else if (e.key === "ArrowLeft") range = [x0 - span / 5, x1 - span / 5];
      else if (e.key === "ArrowRight") range = [x0 + span / 5, x1 + span / 5];
      else if (e.key === "0" || e.key === "Escape") {
        this.setZoom(null);
        e.preventDefault();
        return;
      } else return;
      e.preventDefault();
      this.setZoom(range);
    });
  }
}

// The shared controls over a page's charts: x axis, smoothing, log scale.
export function chartControls(onChange, initial = { x: "step", smoothing: 0, log: false }) {
  const settings = { ...initial };
  const xSel = h("select", { "aria-label": "X axis", onchange: () => { settings.x = xSel.value; onChange({ ...settings }); } },
    [["step", "Step"], ["time", "Relative time"], ["wall", "Wall clock"]].map(([v, l]) => h("option", { value: v, selected: v === settings.x }, l)));
  const smoothOut = h("output", {}, String(settings.smoothing));
  const smoothIn = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(settings.smoothing), "aria-label": "Smoothing",
    oninput: () => { settings.smoothing = Number(smoothIn.value); smoothOut.textContent = smoothIn.value; onChange({ ...settings }); } });
  const logIn = h("input", { type: "checkbox", checked: settings.log, onchange: () => { settings.log = logIn.checked; onChange({ ...settings }); } });
  return h("div", { class: "chart-controls" },
    h("label", {}, "X axis ", xSel),
    h("label", {}, "Smoothing ", smoothIn, " ", smoothOut),
    h("label", {}, logIn, " Log scale"),
    h("span", { class: "muted hint" }, "Drag to zoom · double-click or 0 to reset · +/−/←/→ on a focused chart"));
}
