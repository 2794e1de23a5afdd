// Parallel coordinates of a sweep's trials: one vertical axis per searched parameter and one for
// the primary metric; each trial a line, coloured by its metric, the best trial drawn on top.

import { fmtNumber, h } from "./dom.js";

function axisOf(values) {
  const nums = values.map(Number);
  if (values.length && nums.every((v) => Number.isFinite(v))) {
    let min = Math.min(...nums);
    let max = Math.max(...nums);
    if (min === max) { min -= 1; max += 1; }
    return { numeric: true, min, max, pos: (v) => (Number(v) - min) / (max - min) };
  }
  const cats = [...new Set(values.map(String))].sort();
  return { numeric: false, cats, pos: (v) => (cats.length < 2 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1)) };
}

// trials: [{name, params:{}, metric}], dims: param names, metricName, best: name
export function parallelCoordinates(trials, dims, metricName, best, goal = "minimize") {
  const all = [...dims, metricName];
  const rows = trials.filter((t) => t.metric !== undefined && t.metric !== null);
  const width = Math.max(560, all.length * 160);
  const height = 300;
  const top = 28;
  const bottom = 30;
  const left = 50;
  const right = 50;
  const plotH = height - top - bottom;
  const xOf = (i) => left + (all.length < 2 ? 0 : (i * (width - left - right)) / (all.length - 1));
  const axes = all.map((d, i) => axisOf(rows.map((t) => (i === all.length - 1 ? t.metric : t.params[d]))));
  const svg = h("svg", { class: "parcoords", viewBox: `0 0 ${width} ${height}`, style: `max-width:${width}px`, role: "img", "aria-label": "parallel coordinates of the trials" });
  if (!rows.length) {
    svg.append(h("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no trial has the metric yet"));
    return svg;
  }
  const metricAxis = axes[axes.length - 1];
  // Good trials are green, poor ones red, whichever way the goal points.
  const quality = (t) => {
    const p = metricAxis.numeric ? metricAxis.pos(t.metric) : 0.5;
    return goal === "maximize" ? p : 1 - p;
  };
  const ordered = [...rows].sort((a, b) => (a.name === best) - (b.name === best));
  for (const t of ordered) {
    const pts = all.map((d, i) => {
      const v = i === all.length - 1 ? t.metric : t.params[d];
      return `${xOf(i).toFixed(1)},${(top + plotH - axes[i].pos(v) * plotH).toFixed(1)}`;
    });
    const isBest = t.name === best;
    const hue = Math.round(quality(t) * 120);
    svg.append(h("polyline", { points: pts.join(" "), class: isBest ? "trial best" : "trial", stroke: isBest ? "currentColor" : `hsl(${hue} 70% 45%)`, "data-trial": t.name },
      h("title", {}, `${t.name}${isBest ? " (best)" : ""}: ${metricName} = ${fmtNumber(t.metric)}`)));
  }
  all.forEach((d, i) => {
    const x = xOf(i);
    const axis = axes[i];
    svg.append(h("line", { x1: x, x2: x, y1: top, y2: top + plotH, class: "pc-axis" }));
    svg.append(h("text", { x, y: 16, "text-anchor": "middle", class: "pc-label" }, d));
    const ticks = axis.numeric ? [axis.min, (axis.min + axis.max) / 2, axis.max] : axis.cats;
    for (const t of ticks) svg.append(h("text", { x: x + 4, y: top + plotH - axis.pos(t) * plotH + 4, class: "pc-tick" }, axis.numeric ? fmtNumber(t) : t));
  });
  const bestRow = rows.find((t) => t.name === best);
  if (bestRow) {
    const y = top + plotH - metricAxis.pos(bestRow.metric) * plotH;
    svg.append(h("text", { x: xOf(all.length - 1) - 6, y: y - 6, "text-anchor": "end", class: "pc-best" }, "★ best"));
  }
  return svg;
}
