"""A private, throw-away PostgreSQL 15 server for tests.

initdb refuses to run as root, so the server runs as the ``postgres`` system user (via
``runuser``) in a temporary directory owned by it, listening on 127.0.0.1 only, on a free port,
with its socket in that directory. It is stopped by its pid (``pg_ctl stop`` on that data dir).
Missing binaries raise :class:`PostgresUnavailable` with a clear message: callers fail, not skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("RECFORGE_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries or the postgres user are missing."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running private server; ``url`` is a SQLAlchemy URL for its ``postgres`` database."""

    root: Path
    port: int
    pid: int
    user: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its URL."""
        self._as_user([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name])
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{name}"

    def _as_user(self, cmd: list[str]) -> None:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)  # "fast" shutdown: disconnect clients, exit
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        popen = getattr(self, "_popen", None)
        if popen is not None:
            popen.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


_db_counter = itertools.count()


def fresh_pg_url(server: PostgresServer) -> str:
    """A new empty database on ``server`` (one per test keeps tests independent)."""
    import sqlalchemy as sa

    name = f"t{os.getpid()}_{next(_db_counter)}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def start_postgres() -> PostgresServer:
    """initdb + start a server; raise :class:`PostgresUnavailable` if it cannot run here."""
    for tool in ("initdb", "postgres", "createdb"):
        if not (PG_BIN / tool).exists():
            raise PostgresUnavailable(
                f"PostgreSQL 15 binary {PG_BIN / tool} is missing: install postgresql-15 "
                "(Debian: apt-get install postgresql-15) or set RECFORGE_PG_BIN"
            )
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root but there is no 'postgres' system user to run initdb as"
            ) from None
        user, uid, gid = "postgres", pw.pw_uid, pw.pw_gid
    else:
        user, uid, gid = pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid()
    root = Path(tempfile.mkdtemp(prefix="recforge-pg-"))
    os.chown(root, uid, gid)
    data = root / "data"
    prefix = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *prefix,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            *prefix,
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={root}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = (root / "server.log").read_text(errors="replace")
            raise PostgresUnavailable(f"postgres exited with {proc.returncode}:\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        raise PostgresUnavailable("postgres did not accept connections within 30 s")
    # With runuser the Popen pid is runuser's; the server's own pid is in postmaster.pid.
    pid = int((data / "postmaster.pid").read_text().split()[0])
    server = PostgresServer(root=root, port=port, pid=pid, user=user)
    server._popen = proc  # type: ignore[attr-defined]  # keep the child reaped
    return server
