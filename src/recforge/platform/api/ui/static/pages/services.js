// Service jobs of the caller's group that are not finished, with their address and replicas.
import { api, el, fill, stateBadge, table } from "../app.js";

const LIVE = ["PENDING", "ADMITTED", "STARTING", "RUNNING", "BACKOFF"];

export async function render(main) {
  const list = el("div", { id: "services" });
  fill(main, el("h1", {}, "Services"), list);
  async function load() {
    const q = new URLSearchParams({ limit: "1000" });
    for (const s of LIVE) q.append("state", s);
    const jobs = (await api(`/jobs?${q}`)).items.filter((j) => j.spec.kind === "service");
    const rows = await Promise.all(jobs.map(async (j) => ({ job: j, svc: await api(`/jobs/${j.id}/service`) })));
    fill(list, rows.length === 0 ? el("p", { class: "muted", id: "no-services" }, "No service is running or waiting.") : table([
      ["job", (r) => el("a", { href: `#/jobs/${r.job.id}` }, String(r.job.id)), "num"],
      ["name", (r) => el("a", { href: `#/jobs/${r.job.id}`, class: "service-name" }, r.job.name)],
      ["job state", (r) => stateBadge(r.job.state)], ["service", (r) => r.svc.state],
      ["address", (r) => r.svc.address ?? "—"],
      ["replicas ready / wanted / max", (r) => `${r.svc.ready} / ${r.svc.desired} / ${r.svc.max_replicas}`, "num"],
      ["restarts", (r) => String(r.svc.replicas.reduce((s, x) => s + x.restarts, 0)), "num"],
      ["owner", (r) => r.job.owner],
    ], rows, { id: "services-table" }));
  }
  await load();
  return load;
}
