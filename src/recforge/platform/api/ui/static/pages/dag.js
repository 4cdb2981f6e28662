// One DAG run: the graph with node states, the nodes' jobs, the run's events and artefacts.
import { api, el, fill, kv, postButton, stateBadge, table, time } from "../app.js";
import { drawDag } from "../graph.js";

const DONE = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export async function render(main, { id }) {
  const head = el("section", { id: "dag" });
  const graph = el("section", { id: "graph" });
  const nodes = el("section", { id: "nodes" });
  const events = el("section", { id: "dag-events" });
  const artifacts = el("section", { id: "artifacts" });
  fill(main, head, graph, nodes, events, artifacts);

  async function load() {
    const run = await api(`/dags/${id}`);
    const cancel = DONE.has(run.state) || run.cancel_requested ? null
      : postButton("cancel", "Cancel run", `/dags/${id}/cancel`, head, load);
    fill(head, el("h1", {}, `DAG run ${run.id}: `, el("span", { id: "dag-name" }, run.name), " ", stateBadge(run.state)),
      kv([["owner", `${run.owner} (group ${run.group})`], ["failure policy", run.dag.failure_policy ?? "stop"],
        ["created", time(run.created_at)], ["started", time(run.started_at)], ["finished", time(run.finished_at)],
        ["scheduled at", time(run.scheduled_at)], ["reason", run.reason]]), cancel);
    const states = Object.fromEntries(run.nodes.map((n) => [n.name, n]));
    fill(graph, el("h2", {}, "Graph"), drawDag(run.dag, states));
    fill(nodes, el("h2", {}, "Nodes"), table([
      ["node", (n) => n.name], ["state", (n) => stateBadge(n.state)],
      ["job", (n) => (n.job_id ? el("a", { href: `#/jobs/${n.job_id}` }, `job ${n.job_id}`) : "")],
      ["job state", (n) => (n.job_state ? stateBadge(n.job_state) : "")],
      ["updated", (n) => time(n.updated_at)], ["reason", (n) => n.reason],
    ], run.nodes, { id: "nodes-table" }));
    const ev = await api(`/dags/${id}/events`);
    fill(events, el("h2", {}, "Events"), table([
      ["at", (e) => time(e.at)], ["node", (e) => e.node ?? "(run)"],
      ["from", (e) => (e.from_state ? stateBadge(e.from_state) : "—")], ["to", (e) => stateBadge(e.to_state)],
      ["reason", (e) => e.reason],
    ], ev, { id: "dag-events-table" }));
    const arts = await api(`/dags/${id}/artifacts`);
    fill(artifacts, el("h2", {}, "Artefacts"), arts.length === 0 ? el("p", { class: "muted" }, "None declared.") : table([
      ["node", (a) => a.node], ["name", (a) => a.name], ["files", (a) => String(a.files.length), "num"],
      ["bytes", (a) => String(a.bytes), "num"],
      ["left out", (a) => a.skipped.map((s) => `${s.path} (${s.why})`).join("; ")],
    ], arts, { id: "artifacts-table" }));
  }
  await load();
  return load;
}
