"""recforge.platform: a gang-scheduling job platform.

Importing this package is cheap: it exposes only the pure-logic core (specs, templates, resources,
scheduler). The runtime (store, backends, service) lives in submodules that pull in SQLAlchemy,
FastAPI or Ray only when imported.
"""

from recforge.platform.resources import (
    Cluster,
    Group,
    GroupQuota,
    PlatformConfig,
    Queue,
    QuotaBook,
    QuotaError,
    parse_platform_config,
)
from recforge.platform.scheduler import (
    Admission,
    AgingPolicy,
    Explanation,
    InfeasibleJob,
    Scheduler,
    UnknownQueue,
)
from recforge.platform.specs import (
    JobSpec,
    ReplicaSpec,
    Resources,
    RetryPolicy,
    SpecError,
    parse_job_spec,
)
from recforge.platform.templates import Template, parse_template, render

__all__ = [
    "Admission",
    "AgingPolicy",
    "Cluster",
    "Explanation",
    "Group",
    "GroupQuota",
    "InfeasibleJob",
    "JobSpec",
    "PlatformConfig",
    "Queue",
    "QuotaBook",
    "QuotaError",
    "ReplicaSpec",
    "Resources",
    "RetryPolicy",
    "Scheduler",
    "SpecError",
    "Template",
    "UnknownQueue",
    "parse_job_spec",
    "parse_platform_config",
    "parse_template",
    "render",
]
