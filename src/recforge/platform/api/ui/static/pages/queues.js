// Queues (pending jobs in scheduling order) and quota usage per group and cluster.
import { api, el, fill, resources, table } from "../app.js";

const DIMS = [["cpu", "cores"], ["memory", "MiB"], ["gpu", "GPUs"], ["pods", "pods"]];
const INF = 1e15; // the scheduler's "no limit" comes back as a very large number

function amount(v) {
  return v === null || v === undefined ? "—" : v >= INF ? "∞" : String(Math.round(v * 1000) / 1000);
}

function bar(used, limit) {
  if (!limit || limit >= INF) return el("span", { class: "muted" }, "");
  const share = used / limit;
  const fillEl = el("span");
  fillEl.style.width = `${Math.min(100, share * 100)}%`; // CSSOM: allowed by the style-src policy
  return el("div", { class: share > 1 ? "bar over" : "bar", title: `${Math.round(share * 100)} % of nominal` }, fillEl);
}

export async function render(main) {
  const queues = el("section", { id: "queues" });
  const usage = el("section", { id: "usage" });
  fill(main, el("h1", {}, "Queues & quota"), queues, usage);
  async function load() {
    const o = await api("/overview");
    fill(queues, el("h2", {}, "Queues"), table([
      ["queue", (q) => q.name], ["group", (q) => q.group],
      ["pending", (q) => String(q.pending.length), "num"], ["held (backoff)", (q) => String(q.held), "num"],
      ["admitted", (q) => String(q.admitted), "num"],
      ["next in line", (q) => q.pending.slice(0, 8).flatMap((j, i) => [i ? ", " : "", el("a", { href: `#/jobs/${j}` }, String(j))])],
    ], o.queues, { id: "queues-table" }));
    const rows = [];
    for (const c of o.clusters) {
      for (const g of c.groups) {
        for (const [d, unit] of DIMS) {
          const used = g.used[d] ?? 0;
          const nominal = g.nominal ? g.nominal[d] ?? 0 : null;
          if (!used && !nominal) continue;
          rows.push({ cluster: c.name, group: g.group, d, unit, used, nominal,
            borrow: g.borrowing_limit ? g.borrowing_limit[d] : null, cap: c.capacity[d], free: c.free[d] });
        }
      }
    }
    fill(usage, el("h2", {}, "Quota usage per group and cluster"), table([
      ["cluster", (r) => r.cluster], ["group", (r) => r.group], ["resource", (r) => `${r.d} (${r.unit})`],
      ["used", (r) => amount(r.used), "num"], ["nominal", (r) => amount(r.nominal), "num"],
      ["of nominal", (r) => bar(r.used, r.nominal)],
      ["borrowing limit", (r) => (r.borrow === null || r.borrow === undefined ? "∞" : amount(r.borrow)), "num"],
      ["cluster free / capacity", (r) => `${amount(r.free)} / ${amount(r.cap)}`, "num"],
    ], rows, { id: "usage-table" }),
    el("p", { class: "muted" }, o.clusters.map((c) => `${c.name}: capacity ${resources(c.capacity)}`).join(" · ")));
  }
  await load();
  return load;
}
