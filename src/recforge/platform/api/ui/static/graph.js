// A DAG drawn as inline SVG: a layered layout (each node one layer right of its deepest
// upstream node; within a layer ordered by the mean place of its upstream nodes) computed here
// from the DAG spec, node boxes coloured by state, edges as curves with arrows.
import { el } from "./app.js";

const NS = "http://www.w3.org/2000/svg";
const W = 170, H = 44, GAP_X = 70, GAP_Y = 22, PAD = 20;
export const FILL = {
  SUCCEEDED: "#dafbe1", FAILED: "#ffebe9", CANCELLED: "#eaeef2", SKIPPED: "#f6f8fa", WAITING: "#ffffff",
  PENDING: "#fff8c5", ADMITTED: "#ddf4ff", STARTING: "#ddf4ff", RUNNING: "#b6e3ff", BACKOFF: "#fff8c5",
  SUBMITTED: "#ddf4ff",
};

/** Node name -> upstream node names, from the spec's edges and artefact inputs. */
export function upstream(dag) {
  const up = {};
  for (const n of dag.nodes ?? []) {
    up[n.name] = new Set(Object.values(n.inputs ?? {}).map((ref) => String(ref).split(".")[0]));
  }
  for (const [a, b] of dag.edges ?? []) up[b]?.add(a);
  return Object.fromEntries(Object.entries(up).map(([k, v]) => [k, [...v].filter((x) => x in up)]));
}

/** Layer and row of every node: {name: [layer, row]}. */
export function layout(names, up) {
  const layer = {};
  const visiting = new Set();
  const depth = (n) => {
    if (n in layer) return layer[n];
    if (visiting.has(n)) return 0; // a cycle cannot be stored; stay finite anyway
    visiting.add(n);
    layer[n] = up[n].length ? 1 + Math.max(...up[n].map(depth)) : 0;
    return layer[n];
  };
  names.forEach(depth);
  const rows = [];
  const place = {};
  names.forEach((n, i) => { (rows[layer[n]] ??= []).push([n, i]); });
  rows.forEach((row, l) => {
    const key = ([n, i]) => (l === 0 || up[n].length === 0 ? i
      : up[n].reduce((s, u) => s + place[u][1], 0) / up[n].length + i / 1e6);
    row.sort((a, b) => key(a) - key(b)).forEach(([n], r) => { place[n] = [l, r]; });
  });
  return place;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** The SVG of ``dag`` with ``states`` {name: {state, job_id}}. */
export function drawDag(dag, states) {
  const names = (dag.nodes ?? []).map((n) => n.name);
  const up = upstream(dag);
  const place = layout(names, up);
  const layers = Math.max(0, ...Object.values(place).map(([l]) => l)) + 1;
  const rows = Math.max(0, ...Object.values(place).map(([, r]) => r)) + 1;
  const width = PAD * 2 + layers * W + (layers - 1) * GAP_X;
  const height = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
  const xy = (n) => [PAD + place[n][0] * (W + GAP_X), PAD + place[n][1] * (H + GAP_Y)];
  const root = svg("svg", { class: "dag", id: "dag-graph", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": `DAG ${dag.name ?? ""}` });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8c959f" }))));
  for (const b of names) {
    for (const a of up[b]) {
      const [x1, y1] = xy(a); const [x2, y2] = xy(b);
      const sx = x1 + W, sy = y1 + H / 2, tx = x2, ty = y2 + H / 2, mx = (sx + tx) / 2;
      root.append(svg("path", { class: "edge", "data-from": a, "data-to": b,
        d: `M${sx},${sy} C${mx},${sy} ${mx},${ty} ${tx},${ty}`, "marker-end": "url(#arrow)" }));
    }
  }
  for (const n of names) {
    const s = states[n] ?? {};
    const shown = s.state === "SUBMITTED" && s.job_state ? s.job_state : (s.state ?? "");
    const [x, y] = xy(n);
    const label = n.length > 22 ? `${n.slice(0, 21)}…` : n;
    const g = svg("g", { class: "node", "data-node": n, "data-state": s.state ?? "", transform: `translate(${x},${y})` },
      svg("title", {}, `${n}: ${s.state ?? ""}${s.job_state ? ` (job ${s.job_id}: ${s.job_state})` : ""}${s.reason ? ` — ${s.reason}` : ""}`),
      svg("rect", { width: W, height: H, fill: FILL[shown] ?? "#ffffff" }),
      svg("text", { x: 10, y: 18, "font-weight": 600 }, label),
      svg("text", { x: 10, y: 34, fill: "#5d6b78" }, shown + (s.job_id ? ` · job ${s.job_id}` : "")));
    if (s.job_id) {
      const a = svg("a", { href: `#/jobs/${s.job_id}` });
      a.append(g);
      root.append(a);
    } else {
      root.append(g);
    }
  }
  return el("div", { class: "graph" }, root);
}
