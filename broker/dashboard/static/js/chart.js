// The history chart, drawn as SVG by the page (no chart library): one point per aggregated
// period, a line through them, and the layer's thresholds as dashed lines in their colours.
const NS = "http://www.w3.org/2000/svg";
const W = 360, H = 200, PAD = { left: 38, right: 8, top: 10, bottom: 22 };

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  parent?.appendChild(node);
  return node;
}

/** Draw `points` ([value, start, end] triples) into `container`; `thresholds` as [{value, color}]. */
export function drawChart(container, points, { since, until, thresholds = [], unit = "", empty = "" }) {
  container.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
  if (!points.length) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = empty;
    return svg;
  }
  const values = points.map((p) => p[0]);
  const lines = thresholds.map((th) => th.value);
  let low = Math.min(...values, ...lines), high = Math.max(...values, ...lines);
  if (low === high) { low -= 1; high += 1; }
  const t0 = since.getTime(), t1 = until.getTime();
  const x = (time) => PAD.left + ((time - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (value) => H - PAD.bottom - ((value - low) / (high - low)) * (H - PAD.top - PAD.bottom);
  el("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }, svg);
  el("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }, svg);
  for (const value of [low, high]) {
    el("text", { x: PAD.left - 3, y: y(value) + 3, "text-anchor": "end" }, svg).textContent =
      `${+value.toFixed(2)}${unit}`;
  }
  for (const [time, anchor] of [[t0, "start"], [t1, "end"]]) {
    el("text", { x: x(time), y: H - 6, "text-anchor": anchor }, svg).textContent =
      new Date(time).toLocaleString([], { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  for (const th of thresholds) {
    el("line", { class: "threshold", stroke: th.color, x1: PAD.left, x2: W - PAD.right, y1: y(th.value), y2: y(th.value) }, svg);
  }
  // A period's point sits in its middle: the average is of the whole period.
  const xy = points.map(([value, start, end]) => [x((Date.parse(start) + Date.parse(end)) / 2), y(value)]);
  el("polyline", { class: "line", points: xy.map((p) => p.join(",")).join(" ") }, svg);
  xy.forEach(([cx, cy], i) => {
    const dot = el("circle", { class: "pt", cx, cy, r: 3 }, svg);
    el("title", {}, dot).textContent = `${points[i][1]}: ${points[i][0]}`;
  });
  return svg;
}
