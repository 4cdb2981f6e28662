"""Durable platform state in SQL (SQLAlchemy 2.0 Core): SQLite by default, PostgreSQL for real use.

:class:`Store` is the facade over its parts: the engine and schema (:mod:`.engine`,
:mod:`.tables`), jobs with their events and replicas (:mod:`.jobs`; every state change goes
through :meth:`Store.transition`), users, tokens and the audit log (:mod:`.identity`), templates
and the cluster/group/queue configuration (:mod:`.catalog`), DAG runs (:mod:`.dags`),
schedules (:mod:`.schedules`) and monitoring's anomalies (:mod:`.anomalies`). Records and errors
are in :mod:`.records`.
"""

from __future__ import annotations

from recforge.platform.store.anomalies import AnomalyRecord, AnomalyStore
from recforge.platform.store.catalog import CatalogStore
from recforge.platform.store.dags import DagStore
from recforge.platform.store.engine import DEFAULT_URL
from recforge.platform.store.identity import DEFAULT_TOKEN_TTL, IdentityStore
from recforge.platform.store.jobs import JobsStore, NewJob
from recforge.platform.store.records import (
    AuditEntry,
    ConcurrentTransition,
    Event,
    JobNotFound,
    JobRecord,
    Page,
    ReplicaRecord,
    StoreError,
    TokenInfo,
    User,
    hash_token,
)
from recforge.platform.store.schedules import ScheduleStore

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "DEFAULT_URL",
    "AnomalyRecord",
    "AuditEntry",
    "ConcurrentTransition",
    "Event",
    "JobNotFound",
    "JobRecord",
    "NewJob",
    "Page",
    "ReplicaRecord",
    "Store",
    "StoreError",
    "TokenInfo",
    "User",
    "hash_token",
]


class Store(JobsStore, IdentityStore, CatalogStore, DagStore, ScheduleStore, AnomalyStore):
    """Platform persistence over one engine (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``clock`` supplies timestamps (seconds since the epoch) so tests and the service share one
    notion of time. Tables are created (and older ones upgraded) on construction.
    """
