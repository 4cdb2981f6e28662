"""DAG runs end to end on the service: real node jobs (local backend) on a real store."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dag_support import Services, run_until

from recforge.platform.model.dag_states import NodeState, RunState
from recforge.platform.model.states import JobState
from recforge.platform.runtime.errors import Conflict, Forbidden, Invalid, NotFound
from recforge.platform.runtime.service import PlatformService
from recforge.platform.store import User

PY = sys.executable
ALICE = User("alice", "ml", False)
BOB = User("bob", "ml", False)
EVE = User("eve", "other", False)
N, R = NodeState, RunState

#: a node step: appends "<node> <attempt>" to the marker file, writes its outputs, then exits
#: with argv[3] (or 0 after a first failed attempt when argv[3] is "flaky").
STEP = (
    "import os, sys, pathlib\n"
    "e = os.environ\n"
    "node, attempt = e['RECFORGE_DAG_NODE'], int(e['RECFORGE_ATTEMPT'])\n"
    "with open(sys.argv[1], 'a') as f: f.write(f'{node} {attempt}\\n')\n"
    "ins = {k: v for k, v in e.items() if k.startswith('RECFORGE_INPUT_')}\n"
    "got = ''.join(pathlib.Path(v, 'value.txt').read_text() for _, v in sorted(ins.items()))\n"
    "for k, v in e.items():\n"
    "    if k.startswith('RECFORGE_OUTPUT_'):\n"
    "        pathlib.Path(v, 'value.txt').write_text(got + node)\n"
    "import time; time.sleep(float(sys.argv[2]))\n"
    "code = sys.argv[3]\n"
    "sys.exit(0 if code == 'flaky' and attempt > 1 else 1 if code == 'flaky' else int(code))\n"
)


def step(name: str, marker: Path, *, sleep: float = 0.0, code: str = "0",
         **kw: Any) -> dict[str, Any]:  # fmt: skip
    return {"name": name, "job": {
        "command": [PY, "-c", STEP, str(marker), str(sleep), code],
        "replica_specs": [{"role": "worker", "resources": {"cpu": 0.5}}],
        "retry": {"max_attempts": 1, "backoff_seconds": 0.1},
    }, **kw}  # fmt: skip


def visits(marker: Path) -> list[tuple[str, int]]:
    if not marker.exists():
        return []
    return [(a, int(b)) for a, b in (ln.split() for ln in marker.read_text().splitlines())]


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Services]:
    services = Services(tmp_path)
    yield services
    services.close()


def finished(svc: PlatformService, run_id: int) -> Callable[[], bool]:
    return lambda: svc.store.get_dag_run(run_id).state not in (R.PENDING, R.RUNNING)


def node_states(svc: PlatformService, run_id: int) -> dict[str, NodeState]:
    return {n.name: n.state for n in svc.store.dag_nodes(run_id)}


def test_a_diamond_runs_each_node_as_a_job_and_passes_artefacts(
    make_service, tmp_path: Path
) -> None:
    svc = make_service()
    m = tmp_path / "marks"
    spec = {"name": "diamond", "queue": "q", "labels": {"team": "x"}, "nodes": [
        step("read", m, outputs=["table"]),
        step("left", m, inputs={"t": "read.table"}, outputs=["out"]),
        step("right", m, inputs={"t": "read.table"}, outputs=["out"]),
        step("join", m, inputs={"a": "left.out", "b": "right.out"}, outputs=["result"]),
    ]}  # fmt: skip
    run = svc.dags.submit(ALICE, spec)
    assert run.state is R.PENDING and run.group == "ml"
    run_until(svc, finished(svc, run.id))
    run = svc.store.get_dag_run(run.id)
    assert run.state is R.SUCCEEDED, run.reason
    # Each node ran once, after its upstream nodes.
    order = [n for n, _ in visits(m)]
    assert sorted(order) == ["join", "left", "read", "right"]
    assert order[0] == "read" and order[-1] == "join"
    # Artefacts went node to node by name, through the run's directory.
    assert run.run_dir is not None
    result = Path(run.run_dir, "artifacts", "join", "result", "value.txt").read_text()
    assert result == "readleftreadrightjoin"
    # Each node is its own job, labelled with its DAG, run and node.
    view = svc.dags.view(ALICE, run.id)
    assert [n.state for n in view.nodes] == [N.SUCCEEDED] * 4
    for n in view.nodes:
        job = view.jobs[n.job_id]  # type: ignore[index]
        assert job.state is JobState.SUCCEEDED and job.group == "ml" and job.owner == "alice"
        assert job.spec["labels"] == {"team": "x", "dag": "diamond", "dag-node": n.name,
                                      "dag-run": str(run.id)}  # fmt: skip
    # The run's and nodes' moves are events, in order.
    events = svc.dags.events(ALICE, run.id)
    assert [(e.from_state, e.to_state) for e in events if e.node is None] == [
        (None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    read = [(e.from_state, e.to_state) for e in events if e.node == "read"]
    assert read == [("WAITING", "SUBMITTED"), ("SUBMITTED", "SUCCEEDED")]
    # Artefacts can be listed and read back as a tar archive.
    arts = {(a["node"], a["name"]): a for a in svc.dags.artifacts(ALICE, run.id)}
    assert arts[("join", "result")]["files"] == [{"path": "value.txt", "bytes": len(result)}]
    import io
    import tarfile

    blob = b"".join(svc.dags.artifact_archive(ALICE, run.id, "join", "result"))
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = tar.extractfile("value.txt")
        assert member is not None and member.read().decode() == result


def test_stop_skips_the_rest_and_continue_lets_independent_branches_finish(
    make_service, tmp_path: Path
) -> None:
    svc = make_service()
    runs = {}
    for policy in ("stop", "continue"):
        m = tmp_path / f"marks-{policy}"
        spec = {"name": f"fp-{policy}", "queue": "q", "failure_policy": policy, "nodes": [
            step("bad", m, code="3"), step("after-bad", m),
            step("slow", m, sleep=1.0), step("after-slow", m),
        ], "edges": [["bad", "after-bad"], ["slow", "after-slow"]]}  # fmt: skip
        runs[policy] = svc.dags.submit(ALICE, spec).id
    run_until(svc, lambda: all(finished(svc, r)() for r in runs.values()))
    stop, cont = runs["stop"], runs["continue"]
    assert svc.store.get_dag_run(stop).state is R.FAILED
    st = node_states(svc, stop)
    assert st["bad"] is N.FAILED and st["after-bad"] is N.SKIPPED
    # "slow" was running when "bad" failed: cancelled; its downstream never started.
    assert st["slow"] in (N.CANCELLED, N.SUCCEEDED) and st["after-slow"] is N.SKIPPED
    assert "'bad'" in svc.store.get_dag_run(stop).reason
    assert svc.store.get_dag_run(cont).state is R.FAILED
    assert node_states(svc, cont) == {"bad": N.FAILED, "after-bad": N.SKIPPED,
                                      "slow": N.SUCCEEDED, "after-slow": N.SUCCEEDED}  # fmt: skip
    assert [n for n, _ in visits(tmp_path / "marks-continue")].count("after-slow") == 1


def test_per_node_retries_and_timeouts_override_the_job(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "marks"
    spec = {"name": "rt", "queue": "q", "failure_policy": "continue", "nodes": [
        step("flaky", m, code="flaky", retries=2),
        step("stuck", m, sleep=120, timeout_seconds=1.0),
    ]}  # fmt: skip
    run = svc.dags.submit(ALICE, spec)
    run_until(svc, finished(svc, run.id), timeout=90)
    st = node_states(svc, run.id)
    assert st == {"flaky": N.SUCCEEDED, "stuck": N.FAILED}
    assert sorted(a for n, a in visits(m) if n == "flaky") == [1, 2]
    stuck = next(n for n in svc.store.dag_nodes(run.id) if n.name == "stuck")
    assert stuck.job_id is not None
    job = svc.store.get_job(stuck.job_id)
    assert job.spec["run_deadline_seconds"] == 1.0 and "deadline" in job.reason


def test_cancel_stops_running_nodes_and_cancels_the_rest(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "marks"
    run = svc.dags.submit(ALICE, {"name": "c", "queue": "q", "nodes": [
        step("long", m, sleep=120), step("next", m)], "edges": [["long", "next"]]})  # fmt: skip
    run_until(svc, lambda: node_states(svc, run.id)["long"] is N.SUBMITTED and any(
        n == "long" for n, _ in visits(m)))  # fmt: skip
    with pytest.raises(Forbidden):
        svc.dags.cancel(BOB, run.id)
    with pytest.raises(NotFound):
        svc.dags.cancel(EVE, run.id)
    svc.dags.cancel(ALICE, run.id)
    run_until(svc, finished(svc, run.id))
    done = svc.store.get_dag_run(run.id)
    assert done.state is R.CANCELLED and "alice" in done.reason
    assert node_states(svc, run.id) == {"long": N.CANCELLED, "next": N.CANCELLED}
    assert [n for n, _ in visits(m)] == ["long"]
    with pytest.raises(Conflict, match="already finished"):
        svc.dags.cancel(ALICE, run.id)


def test_bad_submissions_are_refused_before_anything_is_stored(make_service,
                                                               tmp_path: Path) -> None:  # fmt: skip
    svc = make_service()
    m = tmp_path / "marks"
    cases = [
        ({"name": "d", "queue": "q", "nodes": [step("a", m), step("a", m)]}, "duplicate"),
        ({"name": "d", "queue": "q", "nodes": [step("a", m)], "edges": [["a", "zz"]]}, "'zz'"),
        ({"name": "d", "queue": "q", "nodes": [step("a", m), step("b", m)],
          "edges": [["a", "b"], ["b", "a"]]}, "cycle"),
        ({"name": "d", "queue": "nope", "nodes": [step("a", m)]}, "nope"),
        ({"name": "d", "nodes": [{"name": "a", "template": "missing"}]}, "missing"),
        ({"name": "d", "queue": "q", "nodes": [
            step("a", m), {**step("b", m), "job": {**step("b", m)["job"], "queue": "oq"}}]},
         "may not submit to queue 'oq'"),
    ]
    for body, needle in cases:
        with pytest.raises((Invalid, NotFound, Forbidden)) as err:
            svc.dags.submit(ALICE, body)
        assert needle in str(err.value), (needle, str(err.value))
    # An admin may use any queue, but one DAG runs in one group.
    admin = User("root", "ml", True)
    with pytest.raises(Invalid, match="one group"):
        svc.dags.submit(admin, cases[-1][0])
    # A node that could never be admitted (bigger than the quota) is refused at submit too.
    big = step("big", m)
    big["job"]["replica_specs"][0]["resources"] = {"cpu": 64}
    with pytest.raises((Invalid, Conflict)) as err:
        svc.dags.submit(ALICE, {"name": "d", "queue": "q", "nodes": [big]})
    assert "big" in str(err.value)
    assert svc.store.list_dag_runs()[0] == [] and svc.store.list_jobs(limit=10).items == []


def test_another_groups_runs_are_invisible(make_service, tmp_path: Path) -> None:
    svc = make_service()
    run = svc.dags.submit(ALICE, {"name": "v", "queue": "q", "nodes": [step("a", tmp_path / "m")]})
    assert svc.dags.get(BOB, run.id).id == run.id
    with pytest.raises(NotFound):
        svc.dags.get(EVE, run.id)
    assert svc.dags.list_runs(EVE)[0] == []
    assert [r.id for r in svc.dags.list_runs(BOB)[0]] == [run.id]
    run_until(svc, finished(svc, run.id))


def test_a_restart_mid_dag_neither_loses_nor_doubles_a_node(make_service, store_url: str,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Between two services on one store (the first dropped mid-run, as by a crash), on SQLite
    and PostgreSQL."""
    m = tmp_path / "marks"
    url = store_url
    first = make_service(url)
    run = first.dags.submit(ALICE, {"name": "r", "queue": "q", "nodes": [
        step("a", m, sleep=1.5), step("b", m), step("c", m)],
        "edges": [["a", "b"], ["b", "c"]]})  # fmt: skip
    run_until(first, lambda: node_states(first, run.id)["a"] is N.SUBMITTED)
    # The first service stops ticking (gone); a second one recovers from the same store and the
    # still-running replica of "a".
    second = make_service(url)
    second.recover()
    run_until(second, finished(second, run.id), timeout=90)
    assert second.store.get_dag_run(run.id).state is R.SUCCEEDED
    assert sorted(n for n, _ in visits(m)) == ["a", "b", "c"]
    assert json.dumps(sorted(node_states(second, run.id).values())) == json.dumps(
        ["SUCCEEDED"] * 3)
