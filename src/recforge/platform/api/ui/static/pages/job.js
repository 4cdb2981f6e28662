// One job: its fields, why it is where it is, its events, logs, resource samples and, for a
// service job, the service's address and replicas.
import { ApiError, api, el, errorBox, fill, kv, postButton, stateBadge, table, time } from "../app.js";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** Run ``load``; if it fails, the section shows why (the other sections still load). */
async function section(node, load) {
  try { await load(); } catch (err) { fill(node, errorBox(err)); }
}

export async function render(main, { id }) {
  const head = el("section", { id: "job" });
  const why = el("section", { id: "why" });
  const service = el("section", { id: "service" });
  const events = el("section", { id: "events" });
  const metrics = el("section", { id: "metrics" });
  const logs = el("section", { id: "logs" });
  const replica = el("input", { id: "replica", type: "number", min: "0", value: "0", "aria-label": "replica" });
  const tail = el("select", { id: "tail", "aria-label": "lines" },
    ["100", "500", "5000"].map((n) => el("option", { value: n }, `last ${n} lines`)));
  fill(main, head, why, service, events, metrics, logs);

  async function load() {
    const job = await api(`/jobs/${id}`);
    const cancel = TERMINAL.has(job.state) || job.cancel_requested ? null
      : postButton("cancel", "Cancel job", `/jobs/${id}/cancel`, head, load);
    fill(head, el("h1", {}, `Job ${job.id}: `, el("span", { id: "job-name" }, job.name), " ", stateBadge(job.state)),
      kv([
        ["owner", `${job.owner} (group ${job.group})`], ["queue", job.queue], ["kind", job.spec.kind ?? "command"],
        ["cluster", job.cluster ?? "—"], ["attempts", String(job.attempts)], ["preemptions", String(job.preemptions)],
        ["created", time(job.created_at)], ["admitted", time(job.admitted_at)], ["started", time(job.started_at)],
        ["finished", time(job.finished_at)], ["reason", el("span", { id: "job-reason" }, job.reason)],
        ["cancel requested", job.cancel_requested ? "yes" : "no"],
        ["labels", el("span", { id: "job-labels" }, Object.entries(job.spec.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", "))],
      ]), cancel);
    await Promise.all([
      section(why, loadWhy), section(events, loadEvents),
      job.spec.kind === "service" ? section(service, loadService) : null,
      job.attempts === 0 ? noLogs() : Promise.all([section(metrics, loadMetrics), loadLogs()]),
    ]);
  }

  async function loadWhy() {
    const w = await api(`/jobs/${id}/why`);
    fill(why, el("h2", {}, "Why"), el("p", { id: "why-reason" }, w.reason),
      w.queue_position ? el("p", { id: "why-position" }, `place ${w.queue_position} of ${w.detail.queue_length ?? "?"} in queue ${w.queue}`) : null,
      w.blocking.length ? table([
        ["cluster", (b) => b.cluster ?? ""], ["resource", (b) => b.resource],
        ["needed", (b) => String(b.needed), "num"], ["available", (b) => String(b.available), "num"],
        ["limited by", (b) => b.limited_by],
      ], w.blocking, { id: "why-blocking" }) : null);
  }

  async function loadEvents() {
    const ev = await api(`/jobs/${id}/events`);
    fill(events, el("h2", {}, "Events"), table([
      ["at", (e) => time(e.at)], ["from", (e) => e.from_state ? stateBadge(e.from_state) : "—"],
      ["to", (e) => stateBadge(e.to_state)], ["reason", (e) => e.reason],
    ], ev, { id: "events-table" }));
  }

  async function loadService() {
    const s = await api(`/jobs/${id}/service`);
    fill(service, el("h2", {}, "Service"), kv([
      ["state", el("span", { id: "service-state" }, s.state)], ["address", el("span", { id: "service-address" }, s.address ?? "—")],
      ["replicas", `${s.ready} ready of ${s.desired} wanted (max ${s.max_replicas})`],
    ]), table([
      ["slot", (r) => String(r.slot), "num"], ["pid", (r) => String(r.pid ?? ""), "num"], ["port", (r) => String(r.port), "num"],
      ["ready", (r) => (r.ready ? "yes" : "no")], ["restarts", (r) => String(r.restarts), "num"],
      ["last exit", (r) => String(r.last_exit ?? "")],
    ], s.replicas, { id: "service-replicas" }));
  }

  function noLogs() {
    fill(metrics);
    fill(logs, el("h2", {}, "Logs"), el("p", { class: "muted", id: "no-logs" }, "Not launched yet: no logs."));
  }

  async function loadMetrics() {
    const m = await api(`/jobs/${id}/metrics`);
    const latest = Object.entries(m.replicas).map(([r, xs]) => ({ replica: r, ...(xs.at(-1) ?? {}) }));
    fill(metrics, el("h2", {}, "Resources (latest sample per replica)"), table([
      ["replica", (s) => s.replica, "num"], ["at", (s) => time(s.t)], ["cpu %", (s) => s.cpu_percent?.toFixed(1) ?? "", "num"],
      ["rss MiB", (s) => s.rss_mib?.toFixed(1) ?? "", "num"], ["limit MiB", (s) => String(s.limit_mib ?? ""), "num"],
      ["processes", (s) => String(s.processes ?? ""), "num"],
    ], latest, { id: "metrics-table" }),
    m.anomalies.length ? table([["at", (a) => time(a.at)], ["replica", (a) => String(a.replica), "num"],
      ["kind", (a) => a.kind], ["message", (a) => a.message]], m.anomalies, { id: "anomalies" }) : null);
  }

  async function loadLogs() {
    const pre = el("pre", { class: "logs", id: "log-text" });
    try {
      const l = await api(`/jobs/${id}/logs?replica=${Number(replica.value) || 0}&tail=${tail.value}`);
      pre.textContent = l.text || "(no output)";
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      pre.textContent = err.message;
    }
    fill(logs, el("h2", {}, "Logs"), el("div", { class: "toolbar" }, "replica", replica, tail), pre);
  }
  replica.addEventListener("change", loadLogs);
  tail.addEventListener("change", loadLogs);
  await load();
  return load;
}
