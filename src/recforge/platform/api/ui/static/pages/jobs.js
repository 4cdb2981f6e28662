// Jobs of the caller's group (admins: all), newest first, filtered by state, page by page.
import { ago, api, el, fill, stateBadge, table } from "../app.js";

const STATES = ["", "PENDING", "ADMITTED", "STARTING", "RUNNING", "BACKOFF", "SUCCEEDED", "FAILED",
  "CANCELLED"];

export async function render(main) {
  const select = el("select", { id: "state-filter", "aria-label": "state" },
    STATES.map((s) => el("option", { value: s }, s || "all states")));
  const list = el("div", { id: "jobs" });
  const more = el("button", { id: "more", type: "button", hidden: true }, "Older jobs");
  let cursor = null;
  let rows = [];

  async function load(append) {
    const q = new URLSearchParams({ limit: "50" });
    if (select.value) q.append("state", select.value);
    if (append && cursor) q.set("cursor", cursor);
    const page = await api(`/jobs?${q}`);
    rows = append ? rows.concat(page.items) : page.items;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    fill(list, rows.length === 0 ? el("p", { class: "muted", id: "no-jobs" }, "No jobs.") : table([
      ["id", (j) => el("a", { href: `#/jobs/${j.id}` }, String(j.id)), "num"],
      ["name", (j) => el("a", { href: `#/jobs/${j.id}`, class: "job-name" }, j.name)],
      ["state", (j) => stateBadge(j.state)],
      ["queue", (j) => j.queue],
      ["owner", (j) => j.owner],
      ["group", (j) => j.group],
      ["cluster", (j) => j.cluster ?? ""],
      ["created", (j) => ago(j.created_at)],
      ["reason", (j) => el("span", { class: "muted" }, j.reason)],
    ], rows, { id: "jobs-table" }));
  }
  select.addEventListener("change", () => load(false));
  more.addEventListener("click", () => load(true));
  fill(main, el("h1", {}, "Jobs"), el("div", { class: "toolbar" }, select), list, more);
  await load(false);
  // Refresh only the first page (an extended list is left as it is).
  return () => (rows.length <= 50 ? load(false) : Promise.resolve());
}
