// One schedule: its definition, recorded instants with their runs, and its events.
import { api, el, fill, kv, stateBadge, table, time } from "../app.js";

export async function render(main, { id }) {
  const head = el("section", { id: "schedule" });
  const instants = el("section", { id: "instants" });
  const events = el("section", { id: "schedule-events" });
  fill(main, head, instants, events);
  async function load() {
    const s = await api(`/schedules/${id}`);
    const spec = s.schedule;
    fill(head, el("h1", {}, `Schedule ${s.id}: `, el("span", { id: "schedule-name" }, s.name), " ", stateBadge(s.state)),
      kv([["owner", `${s.owner} (group ${s.group})`],
        ["when", spec.cron ? `cron ${spec.cron} in ${spec.timezone ?? "UTC"}` : `once at ${spec.at ?? ""}`],
        ["runs", spec.dag ? `DAG ${spec.dag.name ?? ""}` : `job ${spec.job?.name ?? ""}`],
        ["concurrency", spec.concurrency ?? ""], ["catch-up bound", String(spec.catch_up ?? "")],
        ["next instant", time(s.next_at)], ["created", time(s.created_at)]]));
    const xs = await api(`/schedules/${id}/instants?limit=100`);
    const link = (i) => (i.run_id === null ? "" : i.run_kind === "dag"
      ? el("a", { href: `#/dags/${i.run_id}` }, `DAG run ${i.run_id}`) : el("a", { href: `#/jobs/${i.run_id}` }, `job ${i.run_id}`));
    fill(instants, el("h2", {}, "Instants"), xs.length === 0 ? el("p", { class: "muted" }, "None recorded yet.") : table([
      ["instant", (i) => time(i.instant)], ["state", (i) => stateBadge(i.state)], ["backfill", (i) => (i.backfill ? "yes" : "")],
      ["run", link], ["outcome", (i) => i.outcome ?? ""], ["reason", (i) => i.reason],
    ], xs, { id: "instants-table" }));
    const ev = await api(`/schedules/${id}/events`);
    fill(events, el("h2", {}, "Events"), table([["at", (e) => time(e.at)], ["message", (e) => e.message]], ev,
      { id: "schedule-events-table" }));
  }
  await load();
  return load;
}
