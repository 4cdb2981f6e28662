"""The platform's tables (SQLAlchemy Core metadata): jobs, events, replicas, templates, users,
tokens, configuration, the audit log, DAG runs with their nodes and events, schedules with
their recorded instants, and monitoring's anomalies."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "anomalies_t",
    "audit_t",
    "config_t",
    "dag_events_t",
    "dag_nodes_t",
    "dag_runs_t",
    "events_t",
    "jobs_t",
    "metadata",
    "replicas_t",
    "schedule_events_t",
    "schedule_instants_t",
    "schedules_t",
    "templates_t",
    "tokens_t",
    "users_t",
]

metadata = sa.MetaData()

jobs_t = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("group_name", sa.String(200), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("cluster", sa.String(200)),
    sa.Column("admission", sa.JSON(none_as_null=True)),
    sa.Column("handle", sa.JSON(none_as_null=True)),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("preemptions", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("not_before", sa.Double),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("admitted_at", sa.Double),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Index("ix_jobs_state_id", "state", "id"),
    sa.Index("ix_jobs_owner_id", "owner", "id"),
    sa.Index("ix_jobs_queue_id", "queue", "id"),
)

events_t = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Index("ix_events_job_id", "job_id", "id"),
)

replicas_t = sa.Table(
    "replicas",
    metadata,
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(100), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_heartbeat", sa.Double),
    sa.Column("pid", sa.Integer),
    sa.Column("exit_code", sa.Integer),
    sa.Column("handle", sa.JSON(none_as_null=True)),
)

templates_t = sa.Table(
    "templates",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("body", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

users_t = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("group_name", sa.String(200), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

tokens_t = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "user_name", sa.String(200), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("label", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    # A public handle (shown in listings, used to revoke); the secret itself is never stored.
    sa.Column("token_id", sa.String(32), unique=True),
    sa.Column("expires_at", sa.Double),
)

config_t = sa.Table(
    "config",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("body", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)




audit_t = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(400), nullable=False, default=""),
    sa.Column("detail", sa.JSON(none_as_null=True)),
    sa.Index("ix_audit_at", "at", "id"),
)


# -- DAG runs (recforge.platform.store.dags) ----------------------------------------------------
dag_runs_t = sa.Table(
    "dag_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("group_name", sa.String(200), nullable=False),
    sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),  # the DAG + rendered jobs
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("schedule_id", sa.Integer),
    sa.Column("scheduled_at", sa.Double),
    sa.Column("run_dir", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Index("ix_dag_runs_state_id", "state", "id"),
    sa.Index("ix_dag_runs_group_id", "group_name", "id"),
    sa.Index("ix_dag_runs_schedule_id", "schedule_id", "id"),
)

dag_nodes_t = sa.Table(
    "dag_nodes",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dag_runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # in the DAG's topological order
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("job_id", sa.Integer),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_dag_nodes_job_id", "job_id"),
)

dag_events_t = sa.Table(
    "dag_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dag_runs.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("node", sa.String(200)),  # None: the run itself moved
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("job_id", sa.Integer),
    sa.Column("at", sa.Double, nullable=False),
    sa.Index("ix_dag_events_run_id", "run_id", "id"),
)

# -- schedules (recforge.platform.store.schedules) ----------------------------------------------
schedules_t = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("group_name", sa.String(200), nullable=False),
    sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),  # with rendered targets
    sa.Column("state", sa.String(16), nullable=False),  # ACTIVE, SUSPENDED, FINISHED
    sa.Column("version", sa.Integer, nullable=False, default=0),
    # Every instant up to ``cursor`` has been dealt with (run, queued, skipped or missed).
    sa.Column("cursor", sa.Double, nullable=False),
    sa.Column("next_at", sa.Double),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("group_name", "name", name="uq_schedules_group_name"),
)

schedule_instants_t = sa.Table(
    "schedule_instants",
    metadata,
    sa.Column("schedule_id", sa.Integer, sa.ForeignKey("schedules.id", ondelete="CASCADE"),
              primary_key=True),
    # The primary key makes a second run of one instant impossible, whatever crashes when.
    sa.Column("instant", sa.Double, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # QUEUED, STARTED, DONE, SKIPPED, FAILED
    sa.Column("backfill", sa.Boolean, nullable=False, default=False),
    sa.Column("run_kind", sa.String(8)),  # "dag" or "job"
    sa.Column("run_id", sa.Integer),
    sa.Column("outcome", sa.String(16)),  # the run's final state once DONE
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_schedule_instants_state", "schedule_id", "state", "instant"),
)

schedule_events_t = sa.Table(
    "schedule_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("schedule_id", sa.Integer, sa.ForeignKey("schedules.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_schedule_events_schedule_id", "schedule_id", "id"),
)



# -- monitoring (recforge.platform.store.anomalies) -----------------------------------------------
anomalies_t = sa.Table(
    "anomalies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("replica", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Index("ix_anomalies_job_id", "job_id", "id"),
)
