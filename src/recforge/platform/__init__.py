"""recforge.platform: a gang-scheduling job platform.

Importing this package is cheap: names are loaded on first use. The pure-logic core is the
domain model (``model/``) and the scheduler (``scheduling/``); the runtime (``store/``,
``backends/``, ``runtime/``, ``api/``) pulls in SQLAlchemy, FastAPI or Ray only when imported.
Layout and extension points: docs/PLATFORM.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Admission": "model.admission",
    "ReplicaSlot": "model.admission",
    "CONFIG_KINDS": "model.config",
    "Cluster": "model.config",
    "Group": "model.config",
    "GroupQuota": "model.config",
    "PlatformConfig": "model.config",
    "Queue": "model.config",
    "parse_platform_config": "model.config",
    "Resources": "model.resources",
    "JobSpec": "model.specs",
    "ReplicaSpec": "model.specs",
    "RetryPolicy": "model.specs",
    "SpecError": "model.specs",
    "parse_job_spec": "model.specs",
    "Template": "model.templates",
    "parse_template": "model.templates",
    "render": "model.templates",
    "AgingPolicy": "scheduling",
    "Explanation": "scheduling",
    "InfeasibleJob": "scheduling",
    "Preemption": "scheduling",
    "QuotaBook": "scheduling",
    "QuotaError": "scheduling",
    "Scheduler": "scheduling",
    "UnknownQueue": "scheduling",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'recforge.platform' has no attribute {name!r}")
    return getattr(importlib.import_module(f"recforge.platform.{where}"), name)
