"""DAG runs: submit, watch, cancel, and the loop step that drives them (part of the service).

Submission checks the whole DAG before anything is stored: the graph (:mod:`recforge.platform.
model.dag`), every node's job as :meth:`PlatformService.check_job` checks a job (spec, queue,
access, can it ever be admitted), with templates rendered then and kept with the run (later
template edits never change a submitted run). The run and its nodes are stored PENDING/WAITING.

The loop (:meth:`DagRuntime.tick`, one step of the service's reconciler) then makes the run's
directory and its artefact directories and moves it RUNNING; it submits each node as its own job
once every upstream node succeeded (the job and the node's move to SUBMITTED commit in one
transaction, so a crash never loses or doubles a node's job), follows the node jobs' ends
(gang admission, quotas, retries, deadlines and events are those of any job), applies the
failure policy and ends the run once nothing of it runs any more. A job carries the labels
``dag``, ``dag-run``, ``dag-node``.

After a restart (:meth:`DagRuntime.recover`) every unfinished run is looked at again: jobs that
ended meanwhile settle their nodes, and waiting nodes whose upstream nodes succeeded are
submitted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recforge.platform.model.access import may_cancel, may_see_group
from recforge.platform.model.dag import (
    DagSpec,
    artifact_env_name,
    check_placeholders,
    fill_placeholders,
    parse_dag_spec,
)
from recforge.platform.model.dag_states import NODE_MACHINE, RUN_MACHINE, NodeState, RunState
from recforge.platform.model.schedules import iso_instant
from recforge.platform.model.specs import SpecError
from recforge.platform.model.states import TERMINAL_STATES, JobState
from recforge.platform.runtime.artifacts import artifact_dir, list_files, make_run_dir, tar_stream
from recforge.platform.runtime.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    field_of,
)
from recforge.platform.store import ConcurrentTransition, Event, JobNotFound, JobRecord, User
from recforge.platform.store.dags import DagEvent, DagNodeRecord, DagRunNotFound, DagRunRecord

if TYPE_CHECKING:
    from recforge.platform.runtime.service import PlatformService

__all__ = ["DagRuntime", "RunView"]

log = logging.getLogger("recforge.platform.service")
N, R = NodeState, RunState
_JOB_END = {JobState.SUCCEEDED: N.SUCCEEDED, JobState.FAILED: N.FAILED,
            JobState.CANCELLED: N.CANCELLED}  # fmt: skip
_BAD = {N.FAILED, N.CANCELLED, N.SKIPPED}
#: how often every unfinished run is looked at again (news of a node job's end comes at once;
#: this catches what a crash between a job's end and its news left).
SWEEP_SECONDS = 5.0


class RunView:
    """A run with its nodes (and each node's job state) as the API shows it."""

    def __init__(self, run: DagRunRecord, nodes: list[DagNodeRecord],
                 jobs: dict[int, JobRecord]) -> None:  # fmt: skip
        self.run = run
        self.nodes = nodes
        self.jobs = jobs


def _submitter(spec: Mapping[str, Any]) -> User:
    who = spec["submitted_by"]
    return User(who["name"], who["group"], bool(who["is_admin"]))


class DagRuntime:
    """DAG runs of one service (see the module docstring). ``runs_dir`` holds the runs'
    directories; without one, DAGs are refused."""

    def __init__(self, service: PlatformService, runs_dir: Path | None) -> None:
        self.svc = service
        self.store = service.store
        self.runs_dir = runs_dir
        self._lock = threading.Lock()
        self._news: set[int] = set()  # run ids to look at
        self._active: set[int] = set()  # unfinished runs
        self._job_node: dict[int, int] = {}  # job id -> run id
        self._cancels: set[int] = set()  # node jobs whose cancel was asked
        self._last_sweep = 0.0
        self._cancel_reasons: dict[int, str] = {}  # run id -> why (in memory: "cancelled" after
        # a restart)
        service.transitions.listeners.append(self._on_job_move)

    # -- submission -------------------------------------------------------------------------
    def check(self, user: User, spec: DagSpec | Mapping[str, Any] | str,
              *, source: str = "<dag>") -> tuple[DagSpec, dict[str, Any], str]:  # fmt: skip
        """Validate a DAG for ``user`` as a submission would: the DAG, its rendered node jobs
        (node -> job spec mapping) and the group its queues belong to."""
        if self.runs_dir is None:
            raise Conflict("this deployment has no run directory: DAGs cannot run here")
        try:
            dag = spec if isinstance(spec, DagSpec) else parse_dag_spec(spec, source)
        except SpecError as exc:
            raise Invalid(str(exc), field=field_of(str(exc))) from None
        jobs: dict[str, Any] = {}
        groups: dict[str, str] = {}
        for i, node in enumerate(dag.nodes):
            where = f"nodes.{i}"
            try:
                if node.job is not None:
                    job = node.job.model_dump(mode="json")
                else:
                    rendered = self.svc.check_job(
                        user, {"template": node.template, "values": node.values},
                        source=f"{source} {where}",
                    )[0]  # fmt: skip
                    job = rendered.canonical()
                    why = check_placeholders(job, node)
                    if why:
                        raise Invalid(f"node {node.name!r}: {why}", field=f"{where}.template")
                    if dag.queue is not None and job["queue"] == "default":
                        job["queue"] = dag.queue
                    job["env"] = {**dag.env, **job.get("env", {})}
                if node.retries is not None:
                    job["retry"] = {**job.get("retry", {}), "max_attempts": node.retries + 1}
                if node.timeout_seconds is not None:
                    job["run_deadline_seconds"] = node.timeout_seconds
                job["labels"] = {**dag.labels, **job.get("labels", {}), "dag": dag.name,
                                 "dag-node": node.name}  # fmt: skip
                trial = fill_placeholders(job, _dummy_paths(node, job))
                _, queue = self.svc.check_job(user, trial, source=f"{source} {where}.job")
            except ServiceError as exc:
                raise type(exc)(f"node {node.name!r}: {exc.detail}",
                                field=f"{where}.{exc.field}" if exc.field else where) from None
            jobs[node.name] = job
            groups[node.name] = queue.group
        if len(set(groups.values())) > 1:
            raise Invalid(f"the nodes of one DAG run in queues of one group; these use "
                          f"{dict(sorted(groups.items()))}", field="nodes")  # fmt: skip
        return dag, jobs, next(iter(groups.values()))

    def submit(self, user: User, spec: DagSpec | Mapping[str, Any] | str, *,
               source: str = "<dag>", schedule_id: int | None = None,
               scheduled_at: float | None = None, checked: tuple[DagSpec, dict[str, Any], str]
               | None = None) -> DagRunRecord:  # fmt: skip
        """Check and store a run (PENDING); the loop starts it. Raises what :meth:`check`
        raises, nothing stored then."""
        dag, jobs, group = checked or self.check(user, spec, source=source)
        doc = {"dag": dag.canonical(), "jobs": jobs,
               "submitted_by": {"name": user.name, "group": user.group,
                                "is_admin": user.is_admin}}  # fmt: skip
        why = f"submitted by {user.name}" if schedule_id is None else (
            f"scheduled by schedule {schedule_id} for {iso_instant(scheduled_at)}")  # fmt: skip
        run = self.store.create_dag_run(name=dag.name, owner=user.name, group=group, spec=doc,
                                        nodes=dag.order(), reason=why, schedule_id=schedule_id,
                                        scheduled_at=scheduled_at)  # fmt: skip
        self.store.after_commit(lambda: self.notify(run.id))
        log.info("DAG run submitted", extra={"dag_run": run.id, "owner": user.name})
        return run

    def notify(self, run_id: int) -> None:
        """Look at ``run_id`` at the next tick."""
        with self._lock:
            self._active.add(run_id)
            self._news.add(run_id)
        self.svc.reconciler.wake.set()

    # -- reading ----------------------------------------------------------------------------
    def get(self, user: User, run_id: int) -> DagRunRecord:
        try:
            run = self.store.get_dag_run(run_id)
        except DagRunNotFound:
            raise NotFound(f"no DAG run with id {run_id}", field="run_id") from None
        if not may_see_group(user, run.group):
            raise NotFound(f"no DAG run with id {run_id}", field="run_id")
        return run

    def view(self, user: User, run_id: int) -> RunView:
        run = self.get(user, run_id)
        nodes = self.store.dag_nodes(run.id)
        jobs = {}
        for n in nodes:
            if n.job_id is not None:
                with contextlib.suppress(JobNotFound):
                    jobs[n.job_id] = self.store.get_job(n.job_id)
        return RunView(run, nodes, jobs)

    def list_runs(self, user: User, *, limit: int = 50, cursor: str | None = None,
             states: list[RunState] | None = None, group: str | None = None,
             schedule_id: int | None = None) -> tuple[list[DagRunRecord], str | None]:  # fmt: skip
        if not user.is_admin:
            if group is not None and group != user.group:
                raise Forbidden(f"you may list only your group's DAG runs ({user.group!r})",
                                field="group")  # fmt: skip
            group = user.group
        try:
            return self.store.list_dag_runs(limit=limit, cursor=cursor, states=states,
                                            group=group, schedule_id=schedule_id)  # fmt: skip
        except ValueError as exc:
            raise Invalid(str(exc), field="cursor") from None

    def events(self, user: User, run_id: int) -> list[DagEvent]:
        self.get(user, run_id)
        return self.store.dag_events(run_id)

    def cancel(self, user: User, run_id: int, reason: str | None = None) -> DagRunRecord:
        """Cancel a run (its owner or an admin): nothing new starts, running node jobs are
        cancelled, and the run is CANCELLED once none runs any more."""
        run = self.get(user, run_id)
        if not may_cancel(user, run.owner):
            raise Forbidden(f"user {user.name!r} may not cancel DAG run {run_id} of "
                            f"{run.owner!r}: only its owner or an admin may")  # fmt: skip
        if RUN_MACHINE.is_terminal(run.state):
            raise Conflict(f"DAG run {run_id} already finished: {run.state.value} ({run.reason})")
        if user.is_admin and user.name != run.owner:
            self.store.audit(user.name, "cancel-dag-run", f"dag run {run_id}",
                             {"owner": run.owner})  # fmt: skip
        return self.request_cancel(run_id, reason or f"cancelled by {user.name}")

    def request_cancel(self, run_id: int, reason: str) -> DagRunRecord:
        """Flag a run for cancellation (the API's cancel, a schedule's ``replace``)."""
        run = self.store.request_dag_cancel(run_id)
        self._cancel_reasons.setdefault(run_id, reason)
        self.notify(run_id)
        return run

    # -- artefacts --------------------------------------------------------------------------
    def _owner_uid(self, run: DagRunRecord) -> int | None:
        run_as = self._run_as(run.group)
        return None if run_as is None else run_as.uid

    def artifacts(self, user: User, run_id: int) -> list[dict[str, Any]]:
        """Every declared artefact of the run: node, name, the node's state, files and sizes,
        and what was left out (with why)."""
        run = self.get(user, run_id)
        dag = DagSpec.model_validate(run.spec["dag"])
        states = {n.name: n.state for n in self.store.dag_nodes(run.id)}
        owner = self._owner_uid(run)
        out = []
        for node in dag.nodes:
            for name in node.outputs:
                listing = (list_files(artifact_dir(run.run_dir, node.name, name), owner)
                           if run.run_dir else None)  # fmt: skip
                out.append({
                    "node": node.name, "name": name, "node_state": states[node.name].value,
                    "files": [{"path": p, "bytes": b} for p, b in (listing.files if listing
                                                                   else [])],
                    "bytes": listing.bytes if listing else 0,
                    "skipped": [{"path": p, "why": w} for p, w in (listing.skipped if listing
                                                                   else [])],
                })  # fmt: skip
        return out

    def artifact_archive(self, user: User, run_id: int, node: str,
                         name: str) -> Iterator[bytes]:  # fmt: skip
        """One artefact as a gzip-compressed tar stream."""
        run = self.get(user, run_id)
        dag = DagSpec.model_validate(run.spec["dag"])
        try:
            declared = name in dag.node(node).outputs
        except KeyError:
            raise NotFound(f"DAG run {run_id} has no node {node!r}", field="node") from None
        if not declared:
            raise NotFound(f"node {node!r} of DAG run {run_id} has no output {name!r}",
                           field="name")  # fmt: skip
        if run.run_dir is None:
            raise Conflict(f"DAG run {run_id} is {run.state.value}: it has no directory yet")
        return tar_stream(artifact_dir(run.run_dir, node, name), self._owner_uid(run))

    # -- the loop ---------------------------------------------------------------------------
    def _on_job_move(self, job: JobRecord, event: Event) -> None:
        if event.to_state in TERMINAL_STATES:
            run_id = self._job_node.get(job.id)
            if run_id is not None:
                self.notify(run_id)

    def recover(self) -> None:
        """After a (re)start: watch every unfinished run again."""
        for run in self.store.unfinished_dag_runs():
            for n in self.store.dag_nodes(run.id):
                if n.job_id is not None and n.state is N.SUBMITTED:
                    self._job_node[n.job_id] = run.id
            self.notify(run.id)

    def tick(self, now: float) -> bool:
        """Advance the runs with news (every unfinished run every :data:`SWEEP_SECONDS`);
        True if anything moved."""
        with self._lock:
            if now - self._last_sweep >= SWEEP_SECONDS:
                self._news |= self._active
                self._last_sweep = now
            news, self._news = sorted(self._news), set()
        moved = False
        for run_id in news:
            try:
                moved |= self._advance(run_id)
            except Exception:  # one bad run must not stall the others; looked at again later
                log.exception("DAG run step failed", extra={"dag_run": run_id})
        return moved

    def _run_as(self, group_name: str) -> Any:
        group = next((g for g in self.svc.config.groups if g.name == group_name), None)
        return self.svc.users.run_as(group.run_as if group is not None else None)

    def _advance(self, run_id: int) -> bool:
        run = self.store.get_dag_run(run_id)
        if RUN_MACHINE.is_terminal(run.state):
            with self._lock:
                self._active.discard(run_id)
            return False
        dag = DagSpec.model_validate(run.spec["dag"])
        moved = False
        if run.state is R.PENDING:
            if run.cancel_requested:
                return self._finish(run, dag, self.store.dag_nodes(run.id))
            assert self.runs_dir is not None
            try:
                outputs = {n.name: list(n.outputs) for n in dag.nodes}
                path = make_run_dir(self.runs_dir, run.id, outputs, self._run_as(run.group))
            except (OSError, ValueError) as exc:
                self._move_run(run, R.FAILED, f"cannot make the run directory: {exc}")
                return True
            run = self._move_run(run, R.RUNNING, f"started in {path}", run_dir=str(path))
            moved = True
        changed = True
        while changed:  # settle nodes until nothing moves (a skip can unlock a finish)
            changed = self._step(run, dag)
            moved |= changed
            run = self.store.get_dag_run(run_id)
        nodes = self.store.dag_nodes(run.id)
        if all(NODE_MACHINE.is_terminal(n.state) for n in nodes):
            moved |= self._finish(run, dag, nodes)
        return moved

    def _step(self, run: DagRunRecord, dag: DagSpec) -> bool:
        nodes = {n.name: n for n in self.store.dag_nodes(run.id)}
        changed = False
        for n in list(nodes.values()):
            if n.state is N.SUBMITTED and n.job_id is not None:
                try:
                    job = self.store.get_job(n.job_id)
                except JobNotFound:
                    nodes[n.name] = self._move_node(n, N.FAILED, f"its job {n.job_id} is gone")
                    changed = True
                    continue
                self._job_node[job.id] = run.id
                if job.state in _JOB_END:
                    nodes[n.name] = self._move_node(
                        n, _JOB_END[job.state], f"job {job.id} {job.state.value}: {job.reason}")
                    self._job_node.pop(job.id, None)
                    changed = True
        failed = sorted(x.name for x in nodes.values() if x.state in (N.FAILED, N.CANCELLED))
        stopping = run.cancel_requested or (dag.failure_policy == "stop" and bool(failed))
        if stopping:
            why = (self._cancel_reasons.get(run.id, "the DAG run was cancelled")
                   if run.cancel_requested else f"the DAG run stops: node(s) {failed} failed")
            for n in nodes.values():
                if n.state is N.WAITING:
                    to = N.CANCELLED if run.cancel_requested else N.SKIPPED
                    nodes[n.name] = self._move_node(n, to, why)
                    changed = True
                elif n.state is N.SUBMITTED and n.job_id not in self._cancels:
                    self._cancel_job(n, why)
            return changed
        up = dag.upstream()
        for name in dag.order():
            n = nodes[name]
            if n.state is not N.WAITING:
                continue
            ups = sorted(up[name])
            bad = [u for u in ups if nodes[u].state in _BAD]
            if bad:
                nodes[name] = self._move_node(n, N.SKIPPED, f"upstream node(s) {bad} did not "
                                                            "succeed")  # fmt: skip
                changed = True
            elif all(nodes[u].state is N.SUCCEEDED for u in ups):
                nodes[name] = self._submit_node(run, dag, n)
                changed = True
        return changed

    def _cancel_job(self, node: DagNodeRecord, why: str) -> None:
        assert node.job_id is not None
        self._cancels.add(node.job_id)
        try:
            job = self.store.request_cancel(node.job_id)
        except JobNotFound:
            return
        if job.state not in TERMINAL_STATES:
            self.svc.cancel_now(job, why)

    def _paths(self, run: DagRunRecord, dag: DagSpec, node_name: str) -> dict[str, str]:
        node = dag.node(node_name)
        assert run.run_dir is not None
        values = {f"outputs.{o}": str(artifact_dir(run.run_dir, node.name, o))
                  for o in node.outputs}  # fmt: skip
        for local, ref in node.inputs.items():
            src, _, out = ref.partition(".")
            values[f"inputs.{local}"] = str(artifact_dir(run.run_dir, src, out))
        values["run.dir"] = run.run_dir
        values["run.id"] = str(run.id)
        values["run.scheduled_at"] = iso_instant(run.scheduled_at) if run.scheduled_at else ""
        return values

    def _submit_node(self, run: DagRunRecord, dag: DagSpec, node: DagNodeRecord) -> DagNodeRecord:
        values = self._paths(run, dag, node.name)
        job = fill_placeholders(run.spec["jobs"][node.name], values)
        env = {**job.get("env", {}), "RECFORGE_DAG_RUN_ID": str(run.id),
               "RECFORGE_DAG_NODE": node.name, "RECFORGE_RUN_DIR": values["run.dir"]}  # fmt: skip
        if run.scheduled_at is not None:
            env["RECFORGE_SCHEDULED_AT"] = values["run.scheduled_at"]
        for key, path in values.items():
            kind, _, name = key.partition(".")
            if kind in ("inputs", "outputs"):
                env[f"RECFORGE_{kind[:-1].upper()}_{artifact_env_name(name)}"] = path
        job["env"] = env
        job["labels"] = {**job.get("labels", {}), "dag-run": str(run.id)}
        owner = _submitter(run.spec)
        try:
            spec, queue = self.svc.check_job(owner, job, source=f"node {node.name!r}")
        except ServiceError as exc:  # the configuration changed since the run was submitted
            return self._move_node(node, N.FAILED, f"its job could not be created: {exc.detail}")
        with self.store.batch():
            record = self.svc.store_job(owner, spec, queue,
                                        reason=f"node {node.name} of DAG run {run.id}")  # fmt: skip
            moved = self.store.move_node(node, N.SUBMITTED, f"job {record.id} submitted",
                                         job_id=record.id)  # fmt: skip
        self._job_node[record.id] = run.id
        return moved

    def _finish(self, run: DagRunRecord, dag: DagSpec, nodes: list[DagNodeRecord]) -> bool:
        if run.cancel_requested:
            for n in nodes:
                if n.state is N.WAITING:
                    self._move_node(n, N.CANCELLED, "the DAG run was cancelled")
            to, why = R.CANCELLED, self._cancel_reasons.pop(run.id, "cancelled")
        else:
            bad = [n.name for n in nodes if n.state is not N.SUCCEEDED]
            if not bad:
                to, why = R.SUCCEEDED, f"all {len(nodes)} node(s) succeeded"
            else:
                failed = [n.name for n in nodes if n.state in (N.FAILED, N.CANCELLED)]
                to, why = R.FAILED, f"node(s) {failed} failed; {len(bad)} did not succeed"
        self._move_run(run, to, why)
        with self._lock:
            self._active.discard(run.id)
        return True

    def _move_run(self, run: DagRunRecord, to: RunState, reason: str,
                  **fields: Any) -> DagRunRecord:  # fmt: skip
        try:
            moved = self.store.move_run(run, to, reason, **fields)
        except ConcurrentTransition:  # cancel_requested set meanwhile: look again next tick
            self.notify(run.id)
            return self.store.get_dag_run(run.id)
        log.info(f"DAG run {to.value.lower()}", extra={"dag_run": run.id, "reason": reason})
        return moved

    def _move_node(self, node: DagNodeRecord, to: NodeState, reason: str) -> DagNodeRecord:
        return self.store.move_node(node, to, reason)


def _dummy_paths(node: Any, job: Mapping[str, Any]) -> dict[str, str]:
    """Placeholder values for checking a node's job before the run has a directory."""
    values = {f"outputs.{o}": f"/run/artifacts/{node.name}/{o}" for o in node.outputs}
    values.update({f"inputs.{i}": f"/run/artifacts/{r.replace('.', '/')}"
                   for i, r in node.inputs.items()})  # fmt: skip
    values.update({"run.dir": "/run", "run.id": "0", "run.scheduled_at": ""})
    return values


