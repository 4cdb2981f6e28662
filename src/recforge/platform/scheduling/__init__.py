"""Level-1 scheduling, split by concern as Kueue does: pending queues and aging (``queues``),
the quota book (``quota``), ordering (``ordering``), feasibility checks (``feasibility``,
``checks/``), the cycle (``cycle``), explanation (``explain``) and preemption (``preemption``).
"""

from recforge.platform.scheduling.cycle import Scheduler, SchedulerStats
from recforge.platform.scheduling.errors import (
    InfeasibleJob,
    QuotaError,
    UnknownJob,
    UnknownQueue,
    UnknownResource,
)
from recforge.platform.scheduling.explain import ClusterVerdict, Explanation
from recforge.platform.scheduling.preemption import Preemption
from recforge.platform.scheduling.queues import AgingPolicy
from recforge.platform.scheduling.quota import QuotaBook, Shortage

__all__ = [
    "AgingPolicy",
    "ClusterVerdict",
    "Explanation",
    "InfeasibleJob",
    "Preemption",
    "QuotaBook",
    "QuotaError",
    "Scheduler",
    "SchedulerStats",
    "Shortage",
    "UnknownJob",
    "UnknownQueue",
    "UnknownResource",
]
