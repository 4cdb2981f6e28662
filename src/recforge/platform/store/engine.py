"""The store's engine: SQLite (WAL, ``BEGIN IMMEDIATE``) or PostgreSQL, transactions, schema.

SQLite runs in WAL mode with a busy timeout, and write transactions start with ``BEGIN
IMMEDIATE`` so a read-then-write transaction never dies on a lock upgrade. Writers of one
process also take a lock of the store object first: SQLite admits one writer at a time anyway,
and a thread waiting on a Python lock is woken the moment the writer commits, where SQLite's
busy handler polls with sleeps of up to 100 ms (other processes still meet the busy timeout).

``synchronous=NORMAL`` with WAL: a commit is durable against a crash of the process (``kill
-9``: the WAL is in the OS's page cache and is replayed on the next open) and the database is
never corrupted; only a power loss or OS crash can undo the last commits, not fsynced yet.

Tables are created when missing, and columns added by later versions are added to existing
tables (nullable or with a server default), so an older store opens without losing anything.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from recforge.platform.store.tables import metadata

__all__ = ["DEFAULT_URL", "StoreBase", "make_engine"]

DEFAULT_URL = "sqlite:///recforge-platform.db"


def make_engine(url: str, busy_timeout_s: float) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``; ValueError otherwise."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        )
        busy_ms = int(busy_timeout_s * 1000)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Manage transactions ourselves (pysqlite's implicit BEGIN is deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if parsed.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("recforge_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True)
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///path or postgresql+psycopg://..."
    )


class StoreBase:
    """Engine, clock and transactions shared by the store's parts.

    ``clock`` supplies timestamps (seconds since the epoch) so tests and the service share one
    notion of time. Tables are created (and upgraded) on construction unless ``create=False``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 30.0,
        create: bool = True,
    ) -> None:
        self.url = url
        self.clock = clock
        self.engine = make_engine(url, busy_timeout_s)
        self._local = threading.local()  # the open batch of each thread
        # One writer at a time in this process (see the module docstring); PostgreSQL has row
        # locks and concurrent writers, so it needs none.
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        if create:
            metadata.create_all(self.engine)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        with self.engine.begin() as conn:  # one connection: SQLite allows one writer
            inspector = sa.inspect(conn)
            for table in metadata.sorted_tables:
                have = {c["name"] for c in inspector.get_columns(table.name)}
                for col in table.columns:
                    if col.name in have:
                        continue
                    ddl = sa.schema.CreateColumn(col).compile(dialect=self.engine.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run the store calls of this thread inside ONE transaction (committed at the end,
        rolled back on an exception); callbacks registered with :meth:`after_commit` run once
        it has committed. One commit for a whole tick's worth of moves instead of one each."""
        if getattr(self._local, "conn", None) is not None:  # nested: part of the outer batch
            yield
            return
        after: list[Callable[[], None]] = []
        with self._writer, self.engine.begin() as conn:
            self._local.conn, self._local.after = conn, after
            try:
                yield
            finally:
                self._local.conn = self._local.after = None
        for fn in after:
            fn()

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the current batch has committed (at once outside a batch)."""
        after = getattr(self._local, "after", None)
        if after is None:
            fn()
        else:
            after.append(fn)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._writer, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:  # see the batch's own writes
            yield conn
            return
        with self.engine.connect() as raw:
            conn = raw.execution_options(recforge_readonly=True)
            with conn.begin():
                yield conn
