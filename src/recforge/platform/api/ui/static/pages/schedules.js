// Schedules of the caller's group (admins: all).
import { api, el, fill, stateBadge, table, time } from "../app.js";

export async function render(main) {
  const list = el("div", { id: "schedules" });
  fill(main, el("h1", {}, "Schedules"), list);
  async function load() {
    const items = await api("/schedules");
    fill(list, items.length === 0 ? el("p", { class: "muted", id: "no-schedules" }, "No schedules.") : table([
      ["id", (s) => el("a", { href: `#/schedules/${s.id}` }, String(s.id)), "num"],
      ["name", (s) => el("a", { href: `#/schedules/${s.id}`, class: "schedule-name" }, s.name)],
      ["state", (s) => stateBadge(s.state)],
      ["when", (s) => s.schedule.cron ? `cron ${s.schedule.cron} (${s.schedule.timezone ?? "UTC"})` : `at ${s.schedule.at ?? ""}`],
      ["runs", (s) => (s.schedule.dag ? "DAG" : "job")],
      ["concurrency", (s) => s.schedule.concurrency ?? ""],
      ["next", (s) => time(s.next_at)], ["owner", (s) => s.owner],
    ], items, { id: "schedules-table" }));
  }
  await load();
  return load;
}
