"""``recforge run SPEC --platform URL``: the experiment as a platform DAG (one node per model
entry, then the report) gives the same results.json as a local ``recforge run`` of the same
spec and seed.

The platform is the example deployment's (examples/platform/platform.yaml) service with its
loop in a thread and its REST app served by uvicorn on 127.0.0.1 (a free port), in this process.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recforge.cli.main import app
from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import cap_trials, load_spec
from recforge.platform.api import create_app
from recforge.platform.backends.env import EnvPolicy
from recforge.platform.backends.local import LocalBackend
from recforge.platform.model.deployment import parse_deployment
from recforge.platform.pipelines import experiment_dag
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.store import Store

ROOT = Path(__file__).parents[2]
ADMIN = "pipeline-admin-token-0123456789"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, a token of user ana in group recsys)."""
    import uvicorn
    from serve_support import free_port

    config = parse_deployment((ROOT / "examples/platform/platform.yaml").read_text(),
                              source="platform.yaml")  # fmt: skip
    store = Store(f"sqlite:///{tmp_path / 'platform.db'}")
    save_config(store, config.platform())
    venv_bin = str(Path(sys.executable).parent)
    backend = LocalBackend(tmp_path / "runtime", env=EnvPolicy(path=f"{venv_bin}:/usr/bin:/bin"))
    svc = PlatformService(store, {"local": backend}, runs_dir=tmp_path / "runs",
                          settings=LoopSettings(tick_interval=0.1, heartbeat_timeout=None))
    store.add_user("ana", "recsys")
    token = store.issue_token("ana", label="test")
    stop = threading.Event()
    svc.recover()
    loop = threading.Thread(target=svc.run_forever, args=(stop,), daemon=True)
    loop.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(svc, admin_token=ADMIN), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    web = threading.Thread(target=server.run, daemon=True)
    web.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        web.join(timeout=30)
        stop.set()
        svc.reconciler.wake.set()
        loop.join(timeout=30)
        backend.close()
        store.close()


def test_the_dag_of_an_experiment_has_a_node_per_model_then_the_report() -> None:
    spec = load_spec(ROOT / "examples" / "own-data.yaml")
    dag = experiment_dag(spec, queue="tuning")
    names = [n["name"] for n in dag["nodes"]]
    assert names == ["model-TopPopular", "model-EASE", "model-RP3beta", "report"]
    report = dag["nodes"][-1]
    assert sorted(report["inputs"].values()) == sorted(f"{n}.part" for n in names[:-1])
    env = report["job"]["env"]["RECFORGE_EXPERIMENT"]
    assert "my_interactions.csv" in env and str(ROOT) in env  # the data path is resolved


@pytest.mark.slow
def test_an_experiment_on_the_platform_gives_the_local_results(platform: tuple[str, str],
                                                               tmp_path: Path) -> None:  # fmt: skip
    from typer.testing import CliRunner

    url, token = platform
    spec_file = ROOT / "examples" / "own-data.yaml"
    run_experiment(cap_trials(load_spec(spec_file), 3), tmp_path / "local", log=lambda _m: None)
    r = CliRunner().invoke(app, ["run", str(spec_file), "--max-trials", "3", "--out",
                                 str(tmp_path / "remote"), "--platform", url, "--token", token,
                                 "--queue", "tuning"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "report: SUCCEEDED" in r.stderr and "results of the platform run" in r.stdout
    local = json.loads((tmp_path / "local" / "results.json").read_text())
    remote = json.loads((tmp_path / "remote" / "results.json").read_text())
    assert remote == local
    # The other outputs came back too (report, per-user values, trials of each search).
    for name in ("report.md", "report.html", "best_configs.json", "data.json"):
        assert (tmp_path / "remote" / name).is_file(), name
    assert len(list((tmp_path / "remote" / "trials").glob("*.json"))) == 2
