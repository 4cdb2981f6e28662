"""Group commit of REST submissions: submissions that arrive together share one transaction.

Each ``POST /jobs`` is checked on its own (spec, queue, access, feasibility: a bad one is
answered at once and never joins a group), then waits on the event loop while the checked
submissions of the same loop iteration are stored in ONE transaction of the store
(:meth:`~recforge.platform.runtime.service.PlatformService.store_jobs`). Every submitter gets
its answer only after that transaction has committed, so a 2xx still means stored and durable;
a commit per job was most of the store's cost of a submission (the same idea as PostgreSQL's
``commit_delay``, without the delay: the group is what is already waiting).

If the group's transaction fails, each of its submissions is stored again on its own, so one
submission's failure is only its own. Each event loop serving the app has its own group (a test
client and a server thread may share one app); a group is only touched by its loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from recforge.platform.model.config import Queue
from recforge.platform.model.specs import JobSpec
from recforge.platform.runtime.service import PlatformService
from recforge.platform.store import JobRecord, User

__all__ = ["GroupCommit"]

log = logging.getLogger("recforge.platform.service")
_Waiting = tuple[User, JobSpec, Queue, "asyncio.Future[JobRecord]"]


class GroupCommit:
    """Stores the checked submissions of one event-loop iteration in one transaction."""

    def __init__(self, service: PlatformService) -> None:
        self.service = service
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Waiting]] = {}
        #: transactions and submissions stored so far (for tests and the metrics).
        self.groups = 0
        self.stored = 0

    async def submit(self, user: User, spec: Mapping[str, Any], *, source: str) -> JobRecord:
        """Check ``spec`` for ``user`` (raising the service's errors), then store it with the
        other submissions waiting now; returns once its transaction has committed."""
        job_spec, queue = self.service.check_job(user, spec, source=source)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobRecord] = loop.create_future()
        waiting = self._waiting.get(loop)
        if waiting is None:
            # After the callbacks already due: the other requests that arrived in this
            # iteration get checked and join the group first.
            waiting = self._waiting[loop] = []
            loop.call_soon(self._flush, loop)
        waiting.append((user, job_spec, queue, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        group = self._waiting.pop(loop, [])
        if not group:
            return
        try:
            jobs = self.service.store_jobs([(u, s, q) for u, s, q, _ in group])
        except Exception as exc:
            if len(group) == 1:
                if not group[0][3].done():
                    group[0][3].set_exception(exc)
                return
            log.warning("group commit of %d submissions failed; storing each alone",
                        len(group), exc_info=True)  # fmt: skip
            for item in group:
                self._store_alone(item)
            return
        self.groups += 1
        self.stored += len(jobs)
        for (*_, future), job in zip(group, jobs, strict=True):
            if not future.done():  # a client that went away cancelled its wait
                future.set_result(job)

    def _store_alone(self, item: _Waiting) -> None:
        user, spec, queue, future = item
        try:
            (job,) = self.service.store_jobs([(user, spec, queue)])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        self.groups += 1
        self.stored += 1
        if not future.done():
            future.set_result(job)
