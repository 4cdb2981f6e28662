"""The platform examples in examples/platform validate and schedule as documented."""

from __future__ import annotations

from pathlib import Path

from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.specs import parse_job_spec
from recforge.platform.scheduling import Scheduler

EXAMPLES = Path(__file__).parents[2] / "examples" / "platform"


def test_examples_parse_and_gang_is_admitted_whole() -> None:
    config = parse_platform_config((EXAMPLES / "platform.yaml").read_text(), source="platform.yaml")
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
