"""DAG runs, their nodes and events. Every state change of a run or a node goes through
:meth:`DagStore.move_run` / :meth:`DagStore.move_node`: the rule of
:mod:`recforge.platform.model.dag_states`, a compare-and-set on state and version, and the event
row, in one transaction (joining the thread's :meth:`~.engine.StoreBase.batch` when one is open,
so a node's job and the node's move commit together)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from recforge.platform.model.dag_states import NODE_MACHINE, RUN_MACHINE, NodeState, RunState
from recforge.platform.store.engine import StoreBase
from recforge.platform.store.records import ConcurrentTransition, StoreError, parse_cursor
from recforge.platform.store.tables import dag_events_t, dag_nodes_t, dag_runs_t

__all__ = ["DagEvent", "DagNodeRecord", "DagRunNotFound", "DagRunRecord", "DagStore"]

_TERMINAL_RUN = [s.value for s in RUN_MACHINE.terminal]


class DagRunNotFound(StoreError, KeyError):
    """No DAG run with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "DAG run not found"


@dataclass(frozen=True)
class DagRunRecord:
    """One row of ``dag_runs``: ``spec`` holds the DAG and each node's rendered job spec."""

    id: int
    name: str
    owner: str
    group: str
    spec: dict[str, Any]
    state: RunState
    version: int
    reason: str
    cancel_requested: bool
    schedule_id: int | None
    scheduled_at: float | None
    run_dir: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class DagNodeRecord:
    """One node of a run: its state and, once submitted, its job."""

    run_id: int
    name: str
    position: int
    state: NodeState
    version: int
    job_id: int | None
    reason: str
    updated_at: float


@dataclass(frozen=True)
class DagEvent:
    """A recorded move of a run (``node`` None) or of one of its nodes."""

    id: int
    run_id: int
    node: str | None
    from_state: str | None
    to_state: str
    reason: str
    job_id: int | None
    at: float


def _run(row: Any) -> DagRunRecord:
    m = row._mapping
    return DagRunRecord(
        id=m["id"], name=m["name"], owner=m["owner"], group=m["group_name"], spec=m["spec"],
        state=RunState(m["state"]), version=m["version"], reason=m["reason"],
        cancel_requested=bool(m["cancel_requested"]), schedule_id=m["schedule_id"],
        scheduled_at=m["scheduled_at"], run_dir=m["run_dir"], created_at=m["created_at"],
        updated_at=m["updated_at"], started_at=m["started_at"], finished_at=m["finished_at"],
    )  # fmt: skip


def _node(row: Any) -> DagNodeRecord:
    m = row._mapping
    return DagNodeRecord(
        run_id=m["run_id"], name=m["name"], position=m["position"], state=NodeState(m["state"]),
        version=m["version"], job_id=m["job_id"], reason=m["reason"], updated_at=m["updated_at"],
    )  # fmt: skip


def _event(row: Any) -> DagEvent:
    m = row._mapping
    return DagEvent(id=m["id"], run_id=m["run_id"], node=m["node"], from_state=m["from_state"],
                    to_state=m["to_state"], reason=m["reason"], job_id=m["job_id"], at=m["at"])


class DagStore(StoreBase):
    """DAG runs, nodes and events (see the module docstring)."""

    def create_dag_run(
        self,
        *,
        name: str,
        owner: str,
        group: str,
        spec: dict[str, Any],
        nodes: list[str],
        reason: str,
        schedule_id: int | None = None,
        scheduled_at: float | None = None,
    ) -> DagRunRecord:
        """Store a PENDING run with its nodes (WAITING, in ``nodes`` order) and its first event."""
        now = self.clock()
        with self._write() as conn:
            run_id = conn.execute(dag_runs_t.insert().returning(dag_runs_t.c.id), {
                "name": name, "owner": owner, "group_name": group, "spec": spec,
                "state": RunState.PENDING.value, "version": 0, "reason": reason,
                "cancel_requested": False, "schedule_id": schedule_id,
                "scheduled_at": scheduled_at, "created_at": now, "updated_at": now,
            }).scalar_one()  # fmt: skip
            conn.execute(dag_nodes_t.insert(), [
                {"run_id": run_id, "name": n, "position": i, "state": NodeState.WAITING.value,
                 "version": 0, "reason": "waiting for upstream nodes", "updated_at": now}
                for i, n in enumerate(nodes)
            ])  # fmt: skip
            conn.execute(dag_events_t.insert(), {"run_id": run_id, "node": None,
                                                 "from_state": None, "to_state": "PENDING",
                                                 "reason": reason, "at": now})  # fmt: skip
            row = conn.execute(sa.select(dag_runs_t).where(dag_runs_t.c.id == run_id)).one()
        return _run(row)

    def get_dag_run(self, run_id: int) -> DagRunRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(dag_runs_t).where(dag_runs_t.c.id == run_id)).first()
        if row is None:
            raise DagRunNotFound(f"no DAG run with id {run_id}")
        return _run(row)

    def list_dag_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        states: Iterable[RunState | str] | None = None,
        group: str | None = None,
        schedule_id: int | None = None,
        newest_first: bool = True,
    ) -> tuple[list[DagRunRecord], str | None]:
        """One page of runs, keyset-paginated on ``id``; the cursor of the next page."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be in 1..1000, got {limit}")
        after = parse_cursor(cursor)
        stmt = sa.select(dag_runs_t)
        if states is not None:
            stmt = stmt.where(dag_runs_t.c.state.in_([RunState(s).value for s in states]))
        if group is not None:
            stmt = stmt.where(dag_runs_t.c.group_name == group)
        if schedule_id is not None:
            stmt = stmt.where(dag_runs_t.c.schedule_id == schedule_id)
        if after is not None:
            stmt = stmt.where(dag_runs_t.c.id < after if newest_first else dag_runs_t.c.id > after)
        order = dag_runs_t.c.id.desc() if newest_first else dag_runs_t.c.id.asc()
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(order).limit(limit + 1)).all()
        items = [_run(r) for r in rows[:limit]]
        return items, (str(items[-1].id) if len(rows) > limit else None)

    def unfinished_dag_runs(self) -> list[DagRunRecord]:
        """Every PENDING or RUNNING run, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(dag_runs_t).where(dag_runs_t.c.state.not_in(_TERMINAL_RUN))
                .order_by(dag_runs_t.c.id)
            ).all()  # fmt: skip
        return [_run(r) for r in rows]

    def dag_nodes(self, run_id: int) -> list[DagNodeRecord]:
        """The run's nodes in topological order."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(dag_nodes_t).where(dag_nodes_t.c.run_id == run_id)
                .order_by(dag_nodes_t.c.position)
            ).all()  # fmt: skip
        return [_node(r) for r in rows]

    def dag_events(self, run_id: int) -> list[DagEvent]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(dag_events_t).where(dag_events_t.c.run_id == run_id)
                .order_by(dag_events_t.c.id)
            ).all()  # fmt: skip
        return [_event(r) for r in rows]

    def request_dag_cancel(self, run_id: int) -> DagRunRecord:
        with self._write() as conn:
            n = conn.execute(
                dag_runs_t.update().where(dag_runs_t.c.id == run_id)
                .values(cancel_requested=True, updated_at=self.clock())
            ).rowcount  # fmt: skip
        if n != 1:
            raise DagRunNotFound(f"no DAG run with id {run_id}")
        return self.get_dag_run(run_id)

    def move_run(self, run: DagRunRecord, to: RunState, reason: str,
                 **fields: Any) -> DagRunRecord:  # fmt: skip
        """Move a run (as read) to ``to``; :class:`ConcurrentTransition` if it moved meanwhile.
        ``fields``: ``run_dir``; stamps ``started_at``/``finished_at`` as the move implies."""
        RUN_MACHINE.rule(run.state, to)
        now = self.clock()
        values: dict[str, Any] = {"state": to.value, "version": run.version + 1,
                                  "reason": reason, "updated_at": now, **fields}  # fmt: skip
        if to is RunState.RUNNING:
            values["started_at"] = now
        if RUN_MACHINE.is_terminal(to):
            values["finished_at"] = now
        with self._write() as conn:
            n = conn.execute(
                dag_runs_t.update().where(dag_runs_t.c.id == run.id,
                                          dag_runs_t.c.version == run.version,
                                          dag_runs_t.c.state == run.state.value)
                .values(values)
            ).rowcount  # fmt: skip
            if n != 1:
                raise ConcurrentTransition(f"DAG run {run.id} changed concurrently")
            conn.execute(dag_events_t.insert(), {"run_id": run.id, "node": None,
                                                 "from_state": run.state.value,
                                                 "to_state": to.value, "reason": reason,
                                                 "at": now})  # fmt: skip
            row = conn.execute(sa.select(dag_runs_t).where(dag_runs_t.c.id == run.id)).one()
        return _run(row)

    def move_node(self, node: DagNodeRecord, to: NodeState, reason: str, *,
                  job_id: int | None = None) -> DagNodeRecord:  # fmt: skip
        """Move a node (as read) to ``to`` (recording ``job_id`` when submitted);
        :class:`ConcurrentTransition` if it moved meanwhile."""
        NODE_MACHINE.rule(node.state, to)
        now = self.clock()
        values: dict[str, Any] = {"state": to.value, "version": node.version + 1,
                                  "reason": reason, "updated_at": now}  # fmt: skip
        if job_id is not None:
            values["job_id"] = job_id
        with self._write() as conn:
            n = conn.execute(
                dag_nodes_t.update().where(dag_nodes_t.c.run_id == node.run_id,
                                           dag_nodes_t.c.name == node.name,
                                           dag_nodes_t.c.version == node.version)
                .values(values)
            ).rowcount  # fmt: skip
            if n != 1:
                raise ConcurrentTransition(f"node {node.name!r} of DAG run {node.run_id} "
                                           "changed concurrently")  # fmt: skip
            conn.execute(dag_events_t.insert(), {
                "run_id": node.run_id, "node": node.name, "from_state": node.state.value,
                "to_state": to.value, "reason": reason, "job_id": job_id or node.job_id,
                "at": now,
            })  # fmt: skip
        return DagNodeRecord(node.run_id, node.name, node.position, to, node.version + 1,
                             job_id if job_id is not None else node.job_id, reason, now)

    def node_of_job(self, job_id: int) -> DagNodeRecord | None:
        """The DAG node whose job ``job_id`` is, if any."""
        with self._read() as conn:
            row = conn.execute(sa.select(dag_nodes_t).where(dag_nodes_t.c.job_id == job_id)).first()
        return None if row is None else _node(row)
