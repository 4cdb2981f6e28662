// DAG runs of the caller's group (admins: all), newest first.
import { ago, api, el, fill, stateBadge, table } from "../app.js";

export async function render(main) {
  const list = el("div", { id: "dags" });
  fill(main, el("h1", {}, "DAG runs"), list);
  async function load() {
    const page = await api("/dags?limit=100");
    fill(list, page.items.length === 0 ? el("p", { class: "muted", id: "no-dags" }, "No DAG runs.") : table([
      ["id", (r) => el("a", { href: `#/dags/${r.id}` }, String(r.id)), "num"],
      ["name", (r) => el("a", { href: `#/dags/${r.id}`, class: "dag-name" }, r.name)],
      ["state", (r) => stateBadge(r.state)],
      ["nodes", (r) => String((r.dag.nodes ?? []).length), "num"],
      ["owner", (r) => r.owner],
      ["schedule", (r) => (r.schedule_id ? el("a", { href: `#/schedules/${r.schedule_id}` }, `#${r.schedule_id}`) : "")],
      ["created", (r) => ago(r.created_at)],
      ["reason", (r) => el("span", { class: "muted" }, r.reason)],
    ], page.items, { id: "dags-table" }));
  }
  await load();
  return load;
}
