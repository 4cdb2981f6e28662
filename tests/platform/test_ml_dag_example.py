"""examples/platform/ml-dag.yaml (the seed's ML DAG: read -> preprocess -> features -> train ->
predict -> evaluate -> freeze; its steps are examples/platform/ml_pipeline.py) runs as one DAG of
recforge steps on the local backend, once and from examples/platform/ml-dag-schedule.yaml on its
cron schedule, in the example deployment (examples/platform/platform.yaml). Only the checkout path
(``workdir``) is pointed at this one.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dag_support import run_until

from recforge.platform.backends.env import EnvPolicy
from recforge.platform.backends.local import LocalBackend
from recforge.platform.cli.schedules import load_schedule_file
from recforge.platform.model.dag_states import NodeState, RunState
from recforge.platform.model.deployment import parse_deployment
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.store import Store, User

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "platform"
ANA = User("ana", "recsys", False)
STEPS = ["read", "preprocess", "features", "train", "predict", "evaluate", "freeze"]


def here(dag: dict[str, Any]) -> dict[str, Any]:
    """The DAG with its checkout path pointed at this repository."""
    for node in dag["nodes"]:
        assert node["job"]["workdir"] == "/srv/recforge"
        node["job"]["workdir"] = str(ROOT)
    return dag


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[PlatformService, Clock]]:
    config = parse_deployment((EXAMPLES / "platform.yaml").read_text(), source="platform.yaml")
    clock = Clock()
    store = Store(f"sqlite:///{tmp_path / 'platform.db'}", clock=clock)
    save_config(store, config.platform())
    venv_bin = str(Path(sys.executable).parent)  # `python` is this venv's, with recforge
    backend = LocalBackend(tmp_path / "runtime", env=EnvPolicy(path=f"{venv_bin}:/usr/bin:/bin"))
    settings = LoopSettings(tick_interval=0.05, heartbeat_timeout=None,
                            default_pending_deadline=None)  # fmt: skip
    svc = PlatformService(store, {"local": backend}, runs_dir=tmp_path / "runs",
                          settings=settings, clock=clock)  # fmt: skip
    try:
        yield svc, clock
    finally:
        backend.close()
        store.close()


def _bundle(svc: PlatformService, run_id: int, out: Path) -> dict[str, Any]:
    """Download the run's frozen bundle as a user would (tar stream), check its manifest."""
    import io
    import tarfile

    blob = b"".join(svc.dags.artifact_archive(ANA, run_id, "freeze", "bundle"))
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    manifest = json.loads((out / "bundle" / "MANIFEST.json").read_text())
    for rel, digest in manifest.items():
        assert hashlib.sha256((out / "bundle" / rel).read_bytes()).hexdigest() == digest, rel
    return manifest


@pytest.mark.slow
def test_the_ml_dag_runs_once_and_on_its_cron_schedule(deployment, tmp_path: Path) -> None:
    import yaml

    svc, clock = deployment
    once = svc.dags.submit(ANA, here(yaml.safe_load((EXAMPLES / "ml-dag.yaml").read_text())))
    spec = load_schedule_file(EXAMPLES / "ml-dag-schedule.yaml")
    here(spec["dag"])
    sid = svc.schedules.create(ANA, spec).id
    nightly = svc.store.get_schedule(sid).next_at
    assert nightly is not None
    night = datetime.fromtimestamp(nightly, ZoneInfo("Europe/Berlin"))
    assert (night.hour, night.minute) == (2, 30)  # 02:30 in Berlin
    clock.offset = nightly - time.time() + 1  # the night comes (both runs go side by side)
    scheduled = run_until(svc, lambda: svc.store.list_dag_runs(schedule_id=sid)[0], 120,
                          "the scheduled run")[0]  # fmt: skip
    assert scheduled.scheduled_at == nightly

    def done() -> bool:
        return all(svc.store.get_dag_run(r).state not in (RunState.PENDING, RunState.RUNNING)
                   for r in (once.id, scheduled.id))  # fmt: skip

    run_until(svc, done, 1800, "both ML DAG runs")
    metrics = []
    for run_id in (once.id, scheduled.id):
        run = svc.store.get_dag_run(run_id)
        nodes = svc.store.dag_nodes(run_id)
        assert run.state is RunState.SUCCEEDED, [(n.name, n.state, n.reason) for n in nodes]
        assert [n.name for n in nodes] == STEPS
        assert {n.state for n in nodes} == {NodeState.SUCCEEDED}
        # Each step started only after the one before it had succeeded.
        events = [e for e in svc.store.dag_events(run_id) if e.node is not None]
        order = [e.node for e in events if e.to_state == "SUBMITTED"]
        assert order[:3] == STEPS[:3] and order[-1] == "freeze"
        manifest = _bundle(svc, run_id, tmp_path / f"bundle-{run_id}")
        assert {"metrics.json", "top_k.csv", "train.step.json"} <= set(manifest)
        assert any(k.startswith("model/") for k in manifest)
        result = json.loads((tmp_path / f"bundle-{run_id}/bundle/metrics.json").read_text())
        assert 0 < result["summary"]["NDCG@10"] <= 1
        assert result["meta"]["split_fingerprint"]
        metrics.append(result["summary"])
        freeze = next(n for n in nodes if n.name == "freeze")
        assert freeze.job_id is not None
        step = svc.logs(ANA, freeze.job_id, tail=50)
        want = datetime.fromtimestamp(nightly, UTC).isoformat() if run_id == scheduled.id else ""
        assert f'"scheduled_at": "{want}"' in step
    # Same data, same seed: the scheduled run reproduces the metrics of the run submitted once.
    assert metrics[0] == metrics[1]
    inst = run_until(svc, lambda: [i for i in svc.store.instants(sid) if i.state == "DONE"], 60,
                     "the instant's record to follow its run")  # fmt: skip
    assert [(i.instant, i.outcome, i.run_id) for i in svc.store.instants(sid)] == [
        (nightly, "SUCCEEDED", scheduled.id)]
    assert len(inst) == 1
