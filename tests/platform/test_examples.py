"""The platform examples in examples/platform validate and schedule as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.platform.model.deployment import parse_deployment
from recforge.platform.model.specs import parse_job_spec
from recforge.platform.scheduling import Scheduler

EXAMPLES = Path(__file__).parents[2] / "examples" / "platform"


def test_examples_parse_and_gang_is_admitted_whole() -> None:
    deployment = parse_deployment((EXAMPLES / "platform.yaml").read_text(), source="platform.yaml")
    assert deployment.backends.types() == ["local", "ray"]  # every cluster type has a backend
    config = deployment.platform()
    assert {c.name for c in config.clusters} == {"box", "ray1"}
    tune = parse_job_spec((EXAMPLES / "tune-job.yaml").read_text(), source="tune-job.yaml")
    gang = parse_job_spec((EXAMPLES / "gang-job.yaml").read_text(), source="gang-job.yaml")
    assert gang.min_available == 4
    sched = Scheduler(config)
    sched.submit("tune", tune, now=0.0)
    sched.submit("gang", gang, now=0.0)
    admitted = {a.job_id: a for a in sched.schedule(now=0.0)}
    assert set(admitted) == {"tune", "gang"}
    assert admitted["tune"].cluster == "box"  # cluster_type: local
    assert len(admitted["gang"].replicas) == 4  # all replicas or none


@pytest.mark.slow
@pytest.mark.paper_data("mcrec-ml-100k", "spectralcf-ml-1m")
def test_the_tune_job_example_runs_as_a_platform_job(tmp_path: Path, paper_data: Path) -> None:
    """examples/platform/tune-job.yaml, as written, through the service and the local backend:
    `recforge reproduce toppop-checks` as a job, with the data mirror passed on by the
    deployment (replicas get an allow-listed environment, nothing else)."""
    import sys
    import time

    from recforge.platform.backends.env import EnvPolicy
    from recforge.platform.backends.local import LocalBackend
    from recforge.platform.runtime.service import PlatformService, save_config
    from recforge.platform.store import Store, User

    deployment = parse_deployment((EXAMPLES / "platform.yaml").read_text(), source="platform.yaml")
    store = Store(f"sqlite:///{tmp_path / 'platform.db'}")
    save_config(store, deployment.platform())
    venv_bin = str(Path(sys.executable).parent)  # where `recforge` is installed
    env = EnvPolicy(path=f"{venv_bin}:/usr/bin:/bin",
                    passed={"RECFORGE_DATA_MIRROR": str(paper_data),
                            "RECFORGE_CACHE": str(tmp_path / "cache")})  # fmt: skip
    backend = LocalBackend(tmp_path / "runtime", env=env)
    service = PlatformService(store, {"local": backend})
    try:
        job_id = service.submit(User("ana", "recsys", False),
                                (EXAMPLES / "tune-job.yaml").read_text())  # fmt: skip
        deadline = time.monotonic() + 1800
        while store.get_job(job_id).state.value not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline, store.get_job(job_id)
            service.tick()
            time.sleep(0.5)
        job = store.get_job(job_id)
        log = service.logs(User("ana", "recsys", False), job_id, tail=10_000)
        assert job.state.value == "SUCCEEDED" and job.cluster == "box", (job.reason, log[-2000:])
        assert '"all_ok": true' in log
    finally:
        backend.close()
        store.close()
