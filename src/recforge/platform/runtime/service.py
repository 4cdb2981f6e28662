"""The service façade: everything a user or an admin can ask of the platform, with access rules.

The REST API and the CLI call only the public methods of :class:`PlatformService`; each checks
the caller against :mod:`recforge.platform.model.access`, validates input before anything is
stored, and raises the typed errors of :mod:`recforge.platform.runtime.errors` (which the API
maps to HTTP statuses). Under the façade: the store, the scheduler behind its lock
(:class:`~recforge.platform.runtime.gate.SchedulerGate`), the moves with their effects
(:class:`~recforge.platform.runtime.transitions.Transitions`) and the loop
(:class:`~recforge.platform.runtime.reconciler.Reconciler`). One process serves the API and runs
the loop; :mod:`recforge.platform.runtime.bootstrap` wires it.

Admin actions (configuration, templates, tokens for others, cancelling another user's job) are
written to the audit log.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from recforge.platform.backends.base import Backend
from recforge.platform.backends.users import UserPolicy, check_users
from recforge.platform.model.access import (
    may_cancel,
    may_see_group,
    may_see_template,
    may_submit_to,
)
from recforge.platform.model.config import (
    CONFIG_KINDS,
    Cluster,
    Group,
    PlatformConfig,
    Queue,
    config_kind,
    quota_with_pod_defaults,
)
from recforge.platform.model.specs import JobSpec, SpecError, format_validation_error
from recforge.platform.model.states import ACTIVE_STATES, TERMINAL_STATES, JobState
from recforge.platform.model.templates import Template, parse_template, render
from recforge.platform.runtime import accounts, recovery
from recforge.platform.runtime.dags import DagRuntime
from recforge.platform.runtime.errors import Conflict, Forbidden, Invalid, NotFound, field_of
from recforge.platform.runtime.gate import SchedulerGate
from recforge.platform.runtime.monitoring import Monitor, MonitorSettings
from recforge.platform.runtime.reconciler import LoopSettings, Reconciler, TickReport
from recforge.platform.runtime.schedules import ScheduleRuntime
from recforge.platform.runtime.transitions import Transitions
from recforge.platform.scheduling import QuotaError, Scheduler, Shortage, UnknownResource
from recforge.platform.store import (
    DEFAULT_TOKEN_TTL,
    AuditEntry,
    Event,
    JobNotFound,
    JobRecord,
    NewJob,
    Page,
    Store,
    TokenInfo,
    User,
)

__all__ = ["PlatformService", "Why", "load_config", "save_config"]

log = logging.getLogger("recforge.platform.service")
S = JobState
ConfigItem = Cluster | Group | Queue


def load_config(store: Store) -> PlatformConfig:
    """The cluster/group/queue configuration kept in the store."""
    return PlatformConfig.model_validate(
        {k.plural: list(store.get_config(k.name).values()) for k in CONFIG_KINDS}
    )


def save_config(store: Store, config: PlatformConfig) -> None:
    """Write every cluster/group/queue of ``config`` to the store (replacing same names)."""
    for kind in CONFIG_KINDS:
        for item in getattr(config, kind.plural):
            store.put_config(kind.name, item.name, item.model_dump(mode="json",
                                                                   exclude_unset=True))


@dataclass(frozen=True)
class Why:
    """Why a job is where it is; for a pending job, what blocks it and its place in line."""

    job_id: int
    state: JobState
    reason: str
    queue: str
    queue_position: int | None = None
    blocking: list[tuple[str, Shortage]] = field(default_factory=list)  # (cluster, shortage)
    detail: dict[str, Any] = field(default_factory=dict)


class PlatformService:
    """The platform's operations (see the module docstring).

    ``backends`` maps a cluster type (``"local"``, ``"ray"``) to its backend. ``config``
    defaults to the configuration kept in ``store``; ``scheduler_factory`` builds the scheduler
    from it (and again after every configuration change). ``runs_dir`` holds the directories
    of DAG runs (their artefacts); without it DAGs are refused. DAG runs and schedules are
    :attr:`dags` (:class:`~.dags.DagRuntime`) and :attr:`schedules`
    (:class:`~.schedules.ScheduleRuntime`).
    """

    def __init__(
        self,
        store: Store,
        backends: Mapping[str, Backend],
        *,
        config: PlatformConfig | None = None,
        scheduler_factory: Callable[[PlatformConfig], Scheduler] = Scheduler,
        settings: LoopSettings | None = None,
        users: UserPolicy | None = None,
        clock: Callable[[], float] = time.time,
        runs_dir: Path | None = None,
        monitoring: MonitorSettings | None = None,
    ) -> None:
        self.store = store
        self.backends = dict(backends)
        self.clock = clock
        self.users = users or UserPolicy(switch=False)
        self.config = config if config is not None else load_config(store)
        self.gate = SchedulerGate(self.config, scheduler_factory)
        self.transitions = Transitions(store, self.gate, self.backends, clock)
        self.reconciler = Reconciler(
            store, self.gate, self.transitions, self.backends,
            config=lambda: self.config, users=self.users, settings=settings, clock=clock,
        )  # fmt: skip
        self._config_lock = threading.Lock()
        #: DAG runs and schedules (their own façades; each adds a step to the loop).
        self.dags = DagRuntime(self, runs_dir)
        self.schedules = ScheduleRuntime(self)
        self.reconciler.phases += [self.schedules.tick, self.dags.tick]
        #: anomaly checks of running jobs' resource samples (:mod:`.monitoring`).
        self.monitor = Monitor(store, self.transitions.backend_of, monitoring)
        self.reconciler.phases.append(self.monitor.tick)

    # -- the loop -------------------------------------------------------------------------------
    def recover(self) -> dict[str, list[int]]:
        """Rebuild memory from the store after a (re)start (:func:`.recovery.recover`)."""
        out = recovery.recover(self)
        self.dags.recover()
        self.schedules.recover()
        return out

    def tick(self) -> TickReport:
        """One step of the loop (:meth:`.reconciler.Reconciler.tick`)."""
        return self.reconciler.tick()

    def run_forever(self, stop: threading.Event) -> None:
        self.reconciler.run_forever(stop)

    def health(self) -> str:
        """The store's dialect; raises if the store does not answer."""
        self.store.last_event_id()
        return self.store.dialect

    # -- jobs -----------------------------------------------------------------------------------
    def submit(self, user: User, spec: JobSpec | Mapping[str, Any] | str,
               *, source: str = "<submission>") -> int:  # fmt: skip
        """:meth:`submit_job`, returning the new job's id."""
        return self.submit_job(user, spec, source=source).id

    def submit_job(self, user: User, spec: JobSpec | Mapping[str, Any] | str,
                   *, source: str = "<submission>") -> JobRecord:  # fmt: skip
        """Validate and store a job for ``user`` in PENDING and queue it.

        ``spec`` is a :class:`JobSpec`, a mapping or YAML/JSON text; a mapping ``{"template":
        name, "values": {...}}`` is rendered from a template the user may see. Raises
        :class:`Invalid` (malformed spec, unknown queue or resource), :class:`NotFound` (unknown
        template), :class:`Forbidden` (another group's queue) or :class:`Conflict` (the gang can
        never be admitted: bigger than every cluster or quota the queue's group may use); nothing
        is stored then.
        """
        job_spec, queue = self.check_job(user, spec, source=source)
        return self.store_jobs([(user, job_spec, queue)])[0]

    def store_jobs(self, checked: Sequence[tuple[User, JobSpec, Queue]]) -> list[JobRecord]:
        """Store submissions that :meth:`check_job` passed, in PENDING, in ONE transaction
        (group commit: the REST API's :mod:`~recforge.platform.api.group_commit`); each is
        queued once it has committed. Nothing is stored if the transaction fails."""
        jobs = self._store_checked(checked, None)
        for (user, _, queue), job in zip(checked, jobs, strict=True):
            log.info("job submitted", extra={"job_id": job.id, "queue": queue.name,
                                             "owner": user.name})  # fmt: skip
        return jobs

    def check_job(self, user: User, spec: JobSpec | Mapping[str, Any] | str,
                  *, source: str = "<submission>") -> tuple[JobSpec, Queue]:  # fmt: skip
        """Everything :meth:`submit_job` checks before storing (DAG nodes and schedules are
        checked this way at their submission): the spec and its queue, or the error."""
        job_spec = self._parse(user, spec, source)
        queue = next((q for q in self.config.queues if q.name == job_spec.queue), None)
        if queue is None:
            known = sorted(q.name for q in self.config.queues)
            raise Invalid(f"unknown queue {job_spec.queue!r}; known queues: {known}",
                          field="queue")  # fmt: skip
        if not may_submit_to(user, queue.group):
            raise Forbidden(
                f"user {user.name!r} (group {user.group!r}) may not submit to queue "
                f"{queue.name!r} of group {queue.group!r}",
                field="queue",
            )
        try:
            self.gate.validate(job_spec, job_spec.name)
        except UnknownResource as exc:
            raise Invalid(str(exc), field="replica_specs") from None
        except QuotaError as exc:
            raise Conflict(str(exc)) from None
        return job_spec, queue

    def store_job(self, user: User, job_spec: JobSpec, queue: Queue,
                  reason: str | None = None) -> JobRecord:  # fmt: skip
        """Store a checked job in PENDING; it is queued once stored (at the end of the store's
        batch when one is open, so a DAG node and its job commit together)."""
        return self._store_checked([(user, job_spec, queue)], reason)[0]

    def _store_checked(self, checked: Sequence[tuple[User, JobSpec, Queue]],
                       reason: str | None) -> list[JobRecord]:  # fmt: skip
        jobs = self.store.create_jobs([
            NewJob(name=spec.name, owner=user.name, group=queue.group, queue=queue.name,
                   spec=spec.canonical(), reason=reason or f"submitted by {user.name}")
            for user, spec, queue in checked
        ])  # fmt: skip

        def queue_them() -> None:
            # The checked spec goes in as it is (no second validation) and without waiting
            # for a pass in progress (the gate's inbox); one wake-up of the loop for all.
            for job, (_, spec, _) in zip(jobs, checked, strict=True):
                self.gate.enqueue(job.id, spec, job.created_at,
                                  functools.partial(self.transitions.refuse, job))  # fmt: skip
            self.reconciler.notify()

        self.store.after_commit(queue_them)
        return jobs

    def _parse(self, user: User, spec: JobSpec | Mapping[str, Any] | str, source: str) -> JobSpec:
        from recforge.platform.model.specs import parse_job_spec

        try:
            if isinstance(spec, JobSpec):
                return spec
            if isinstance(spec, Mapping) and "template" in spec:
                extra = sorted(set(spec) - {"template", "values"})
                if extra:
                    raise Invalid(f"template submission: unknown field(s) {extra}",
                                  field=extra[0])  # fmt: skip
                values = spec.get("values") or {}
                if not isinstance(values, Mapping):
                    raise Invalid("template submission: values must be a mapping",
                                  field="values")  # fmt: skip
                return render(self.template(user, str(spec["template"])), values)
            return parse_job_spec(spec, source)
        except SpecError as exc:
            raise Invalid(str(exc), field=field_of(str(exc))) from None

    def get_job(self, user: User, job_id: int) -> JobRecord:
        """The job, if ``user`` may see it (another group's job is :class:`NotFound`)."""
        try:
            job = self.store.get_job(job_id)
        except JobNotFound:
            raise NotFound(f"no job with id {job_id}", field="job_id") from None
        if not may_see_group(user, job.group):
            raise NotFound(f"no job with id {job_id}", field="job_id")
        return job

    def list_jobs(
        self,
        user: User,
        *,
        limit: int = 50,
        cursor: str | None = None,
        states: Sequence[JobState] | None = None,
        queue: str | None = None,
        group: str | None = None,
    ) -> Page:
        """One page of the jobs ``user`` may see, newest first; non-admins only their group's."""
        if not user.is_admin:
            if group is not None and group != user.group:
                raise Forbidden(f"you may list only your group's jobs ({user.group!r})",
                                field="group")  # fmt: skip
            group = user.group
        try:
            return self.store.list_jobs(limit=limit, cursor=cursor, states=states, queue=queue,
                                        group=group)  # fmt: skip
        except ValueError as exc:
            raise Invalid(str(exc), field="cursor" if "cursor" in str(exc) else "limit") from None

    def events(self, user: User, job_id: int) -> list[Event]:
        self.get_job(user, job_id)
        return self.store.events(job_id)

    def cancel(self, user: User, job_id: int) -> JobRecord:
        """Cancel a job (its owner or an admin). Jobs without processes end at once; launched
        ones are stopped by the loop right after (the answer shows ``cancel_requested``).
        Raises :class:`Forbidden`, :class:`NotFound`, or :class:`Conflict` for a finished job."""
        job = self.get_job(user, job_id)
        if not may_cancel(user, job.owner):
            raise Forbidden(
                f"user {user.name!r} may not cancel job {job_id} of {job.owner!r}: only its "
                "owner or an admin may"
            )
        if job.state in TERMINAL_STATES:
            raise Conflict(f"job {job_id} already finished: {job.state.value} ({job.reason})")
        if user.is_admin and user.name != job.owner:
            self.store.audit(user.name, "cancel", f"job {job_id}", {"owner": job.owner})
        self.cancel_now(self.store.request_cancel(job_id), f"cancelled by {user.name}")
        return self.store.get_job(job_id)

    def cancel_now(self, job: JobRecord, reason: str) -> None:
        """Cancel a job flagged for cancellation: at once if it has no processes, else through
        the loop."""
        if job.state in (S.PENDING, S.BACKOFF) and self.transitions.move(
            job, S.CANCELLED, reason
        ) is not None:
            return
        if job.state not in TERMINAL_STATES:
            self.reconciler.request_cancel(job.id, reason)

    def why(self, user: User, job_id: int) -> Why:
        """Why the job is in its state; for a pending job the blocking resources and its place
        in the queue, for a preempting one its victims, for a launched one its replicas."""
        job = self.get_job(user, job_id)
        expl = None
        if job.state in (S.PENDING, S.ADMITTED):
            expl = self.gate.explain(job.id, self.clock())
        if expl is not None:
            return Why(
                job_id=job.id, state=job.state, reason=expl.message, queue=job.queue,
                queue_position=expl.position,
                blocking=[(v.cluster, s) for v in expl.clusters for s in v.shortages],
                detail={
                    "scheduler_state": expl.state,
                    "queue_length": expl.queue_length,
                    "waited_seconds": expl.waited_seconds,
                    "size": expl.size,
                    "effective_size": expl.effective_size,
                    "starving": expl.starving,
                    "starving_in_seconds": expl.starving_in_seconds,
                    "reserved_cluster": expl.reserved_cluster,
                    "preempting": [int(v) for v in expl.preempting],
                    "preempted_by": int(expl.preempted_by) if expl.preempted_by else None,
                    "clusters": {v.cluster: {"fits_now": v.fits_now,
                                             "claimed_by": list(v.claimed_by)}
                                 for v in expl.clusters},
                },
            )  # fmt: skip
        if job.state is S.BACKOFF and job.not_before is not None:
            wait = max(0.0, job.not_before - self.clock())
            reason = f"job {job_id} is in backoff ({job.reason}); requeued in {wait:.1f}s"
        else:
            reason = f"job {job_id} is {job.state.value}: {job.reason}"
        detail: dict[str, Any] = {"preemptions": job.preemptions}
        if job.state in (S.STARTING, S.RUNNING):
            try:
                status = self.reconciler.status_of(job)
            except Exception as exc:  # the backend may be unreachable: say so, do not fail
                status = {"detail": f"backend unreachable: {exc}"}
            if status is not None:
                detail["backend"] = status
        return Why(job.id, job.state, reason, job.queue, detail=detail)

    def overview(self, user: User) -> dict[str, Any]:
        """Queues (pending jobs in scheduling order, held and admitted counts) and quota usage
        per group and cluster, with each cluster's capacity and free amount. Non-admins see
        only their group's queues and usage; capacity and free amounts are everyone's (what
        ``why`` tells about availability anyway)."""
        view = self.gate.overview()
        # Quotas as the scheduler applies them (pods unset = the cluster's pods capacity).
        clusters_by_name = {c.name: c for c in self.config.clusters}
        quotas = {(g.name, q.cluster): quota_with_pod_defaults(q, clusters_by_name[q.cluster])
                  for g in self.config.groups for q in g.quotas
                  if q.cluster in clusters_by_name}  # fmt: skip
        groups = {g.name: g for g in self.config.groups}
        queues = [{"name": q.name, "group": q.group, "pending": [int(j) for j in q.pending],
                   "held": q.held, "admitted": q.admitted}
                  for q in view.queues if may_see_group(user, q.group)]  # fmt: skip
        clusters = []
        for c in view.clusters:
            rows = []
            for g, used in c.used_by_group.items():
                if not may_see_group(user, g):
                    continue
                quota = quotas.get((g, c.cluster))
                total_cap = groups[g].total_cap if g in groups else None
                rows.append({"group": g, "used": used,
                             "nominal": quota.nominal if quota else None,
                             "borrowing_limit": quota.borrowing_limit if quota else None,
                             "total_cap": total_cap})  # fmt: skip
            clusters.append({"name": c.cluster, "capacity": c.capacity, "free": c.free,
                             "groups": rows})  # fmt: skip
        return {"queues": queues, "clusters": clusters}

    def explain(self, job_id: int) -> str:
        """:meth:`why`'s text for an admin (tests and tools)."""
        return self.why(User("admin", "admin", True), job_id).reason

    def logs(self, user: User, job_id: int, replica: int = 0, tail: int = 100) -> str:
        """The last ``tail`` lines of one replica's output (current or last attempt)."""
        job = self.get_job(user, job_id)
        if job.handle is None:
            raise Conflict(f"job {job.id} is {job.state.value} and was never launched: no logs yet")
        backend = self.transitions.backend_of(job)
        if backend is None:
            raise Conflict(f"job {job.id}: no backend for its cluster type")
        try:
            return backend.logs(job.handle, replica, tail)
        except KeyError:
            raise NotFound(f"job {job.id} has no replica {replica}", field="replica") from None
        except OSError as exc:
            raise Conflict(f"logs of job {job.id} replica {replica} unreadable: {exc}") from None

    # -- templates ------------------------------------------------------------------------------
    def metrics(self, user: User, job_id: int, since: float | None = None) -> dict[str, Any]:
        """The job's resource samples per replica (current or last attempt; those after
        ``since``) and the anomalies flagged on it."""
        job = self.get_job(user, job_id)
        backend = self.transitions.backend_of(job)
        series: dict[str, list[dict[str, Any]]] = {}
        if job.handle is not None and backend is not None:
            for r in job.handle.get("replicas", []):
                try:
                    series[str(r["index"])] = backend.samples(job.handle, int(r["index"]), since)
                except (KeyError, OSError):
                    series[str(r["index"])] = []
        return {"job_id": job.id, "attempt": job.attempts, "replicas": series,
                "anomalies": [vars(a) for a in self.store.anomalies(job.id)]}  # fmt: skip

    def replica_heartbeat(self, job_id: int, attempt: int, replica: int, token: str) -> None:
        """A pod sidecar's heartbeat for ``replica`` of ``attempt``, authorised by the token of
        that attempt (not a user's) while the job runs: the job's handle holds only its
        sha256 (:mod:`recforge.platform.backends.kubernetes`). Any mismatch is
        :class:`Forbidden`, without saying whether the job exists."""
        import hmac

        from recforge.platform.store.records import hash_token

        refused = Forbidden(f"the heartbeat token is not valid for job {job_id} attempt {attempt}")
        try:
            job = self.store.get_job(job_id)
        except JobNotFound:
            raise refused from None
        want = (job.handle or {}).get("heartbeat_sha256")
        if (not isinstance(want, str) or job.state in TERMINAL_STATES or job.attempts != attempt
                or (job.handle or {}).get("attempt") != attempt
                or not hmac.compare_digest(want, hash_token(token))):  # fmt: skip
            raise refused
        if not self.store.heartbeat(job_id, replica, attempt=attempt):
            raise NotFound(f"job {job_id} attempt {attempt} has no replica {replica}",
                           field="replica")  # fmt: skip

    def service(self, user: User, job_id: int) -> dict[str, Any]:
        """A service job's address and replicas (:func:`.services.service_status`)."""
        from recforge.platform.runtime.services import service_status

        return service_status(self.get_job(user, job_id))

    def scale(self, user: User, job_id: int, replicas: int) -> dict[str, Any]:
        """Ask a running service job for ``replicas`` replicas (its owner or an admin)."""
        from recforge.platform.runtime.services import request_scale

        job = self.get_job(user, job_id)
        if not may_cancel(user, job.owner):
            raise Forbidden(f"user {user.name!r} may not scale job {job_id} of {job.owner!r}: "
                            "only its owner or an admin may")  # fmt: skip
        return request_scale(job, replicas)

    def templates(self, user: User) -> list[Template]:
        """Templates of the caller's group and admin-owned ones (admins: all)."""
        return [
            Template.model_validate(t["body"])
            for t in self.store.list_templates()
            if may_see_template(user, t["owner"])
        ]

    def template(self, user: User, name: str) -> Template:
        stored = self.store.get_template(name)
        if stored is None or not may_see_template(user, stored["owner"]):
            raise NotFound(f"unknown template {name!r}", field="template")
        return Template.model_validate(stored["body"])

    def put_template(self, admin: User, body: Template | Mapping[str, Any]) -> Template:
        """Create or replace a template (admin only). Its body must render into a valid job
        spec with the parameters' defaults (or example values) before it is stored."""
        self._admin(admin)
        try:
            template = body if isinstance(body, Template) else parse_template(body, "body")
        except SpecError as exc:
            raise Invalid(str(exc), field=field_of(str(exc))) from None
        _check_template_body(template)
        self.store.put_template(template.name, template.owner, template.model_dump(mode="json"))
        self.store.audit(admin.name, "put-template", template.name, {"owner": template.owner})
        return template

    def delete_template(self, admin: User, name: str) -> None:
        self._admin(admin)
        if not self.store.delete_template(name):
            raise NotFound(f"unknown template {name!r}", field="name")
        self.store.audit(admin.name, "delete-template", name)

    # -- configuration --------------------------------------------------------------------------
    def config_items(self, kind: str) -> list[ConfigItem]:
        """Every definition of ``kind`` (clusters, groups, queues): open to every user."""
        k = config_kind(kind)
        return list(getattr(self.config, k.plural))

    def replace_config(
        self, admin: User, kind: str, items: Sequence[ConfigItem | Mapping[str, Any]]
    ) -> list[ConfigItem]:
        """Replace every definition of ``kind`` (admin only). The whole configuration must stay
        consistent and no unfinished job may lose its queue or cluster (:class:`Conflict`
        naming the problem otherwise); the scheduler uses the new configuration at once."""
        self._admin(admin)
        k = config_kind(kind)
        with self._config_lock:
            current = {x.plural: [i.model_dump(mode="json", exclude_unset=True)
                                  for i in getattr(self.config, x.plural)]
                       for x in CONFIG_KINDS}  # fmt: skip
            current[k.plural] = [
                i.model_dump(mode="json", exclude_unset=True) if isinstance(i, BaseModel)
                else dict(i) for i in items
            ]  # fmt: skip
            try:
                new = PlatformConfig.model_validate(current)
            except ValidationError as exc:
                raise Conflict(format_validation_error(exc, "platform config",
                                                       f"after PUT /{k.plural}"),
                               field=k.plural) from None  # fmt: skip
            if k.name == "cluster":
                missing = sorted({c.type for c in new.clusters} - set(self.backends))
                if missing:
                    raise Conflict(f"no backend for cluster type(s) {missing} in this "
                                   f"deployment (configured: {sorted(self.backends)})",
                                   field="clusters")  # fmt: skip
            if k.name == "group":
                try:
                    check_users(self.users, [g.run_as for g in new.groups])
                except ValueError as exc:
                    raise Invalid(str(exc), field="run_as") from None
            self._refuse_orphaning(k.plural, new)
            new_items = getattr(new, k.plural)
            names = {i.name for i in new_items}
            for name in self.store.get_config(k.name):
                if name not in names:
                    self.store.delete_config(k.name, name)
            for item, raw in zip(new_items, current[k.plural], strict=True):
                self.store.put_config(k.name, item.name, raw)
            self.store.audit(admin.name, f"put-{k.plural}", k.plural,
                             {"names": sorted(names)})  # fmt: skip
            self.config = new
            recovery.rebuild_scheduler(self)
        self.reconciler.notify()
        return list(new_items)

    def _refuse_orphaning(self, path: str, new: PlatformConfig) -> None:
        """Conflict if the change would strand unfinished jobs: a removed (or re-grouped) queue
        with unfinished jobs, or a removed cluster with jobs admitted there."""
        unfinished = [s for s in JobState if s not in TERMINAL_STATES]
        if path == "queues":
            fresh = {q.name: q for q in new.queues}
            for old in self.config.queues:
                changed = old.name not in fresh or fresh[old.name].group != old.group
                if changed:
                    page = self.store.list_jobs(limit=5, states=unfinished, queue=old.name)
                    if page.items:
                        ids = [j.id for j in page.items]
                        what = "remove" if old.name not in fresh else "move to another group"
                        raise Conflict(
                            f"cannot {what} queue {old.name!r}: it has unfinished jobs (e.g. "
                            f"{ids}); cancel them or let them finish first",
                            field="queues",
                        )
        elif path == "clusters":
            gone = {c.name for c in self.config.clusters} - {c.name for c in new.clusters}
            if gone:
                busy = sorted(
                    {j.cluster for j in self.store.iter_jobs(ACTIVE_STATES) if j.cluster in gone}
                )
                if busy:
                    raise Conflict(f"cannot remove cluster(s) {busy}: jobs are admitted or "
                                   "running there", field="clusters")  # fmt: skip

    # -- tokens and audit -----------------------------------------------------------------------
    def issue_token(
        self,
        actor: User,
        user: str,
        *,
        group: str | None = None,
        admin: bool = False,
        label: str = "",
        ttl_seconds: float = DEFAULT_TOKEN_TTL,
    ) -> tuple[User, str, TokenInfo]:
        """Issue a token (admins for anyone, creating the user in ``group`` if new; users for
        themselves). Returns the user, the secret (shown once) and the stored record."""
        if not actor.is_admin and (user != actor.name or admin or group not in (None, actor.group)):
            raise Forbidden(f"user {actor.name!r} is not an admin: users may issue tokens "
                            "only for themselves")
        known = {g.name for g in self.config.groups}
        out = accounts.issue_token(self.store, user, group=group, admin=admin, label=label,
                                   ttl_seconds=ttl_seconds, known_groups=known)  # fmt: skip
        if actor.is_admin:
            who, _, info = out
            detail = {"token_id": info.token_id, "group": who.group, "admin": who.is_admin,
                      "expires_at": info.expires_at}
            self.store.audit(actor.name, "issue-token", user, detail)
        return out

    def tokens(self, actor: User, user: str | None = None) -> list[TokenInfo]:
        """Tokens (never their secrets): a user's own; admins anyone's (``user`` None: all)."""
        if not actor.is_admin:
            if user not in (None, actor.name):
                raise Forbidden("you may list only your own tokens", field="user")
            user = actor.name
        return self.store.list_tokens(user)

    def revoke_token(self, actor: User, token_id: str) -> TokenInfo:
        """Revoke a token by its public id: its owner or an admin."""
        info = self.store.get_token(token_id)
        if info is None or not (actor.is_admin or info.user == actor.name):
            raise NotFound(f"no token {token_id!r}", field="token_id")
        self.store.revoke_token(token_id)
        if actor.is_admin:
            self.store.audit(actor.name, "revoke-token", info.user, {"token_id": token_id})
        return info

    def audit_log(self, admin: User, *, limit: int = 100, cursor: str | None = None,
                  action: str | None = None) -> tuple[list[AuditEntry], str | None]:  # fmt: skip
        self._admin(admin)
        try:
            return self.store.audit_log(limit=limit, cursor=cursor, action=action)
        except ValueError as exc:
            raise Invalid(str(exc), field="cursor") from None

    @staticmethod
    def _admin(user: User) -> None:
        if not user.is_admin:
            raise Forbidden(f"user {user.name!r} is not an admin; this needs an admin token")


def _check_template_body(template: Template) -> None:
    """Refuse a template whose body cannot become a job spec (checked with the defaults, and
    with a value of the right type for parameters without one)."""
    samples = {"int": 1, "float": 1.0, "str": "x", "bool": True, "list": []}
    values: dict[str, Any] = {}
    for p in template.parameters:
        if p.default is None:
            value: Any = p.choices[0] if p.choices else samples[p.type]
            if p.min is not None and value < p.min:
                value = p.min if p.type == "float" else int(p.min)
            values[p.name] = value
    try:
        render(template, values)
    except SpecError as exc:
        raise Invalid(f"template {template.name!r}: its body is not a valid job spec: {exc}",
                      field="body") from None  # fmt: skip
