"""Fixtures for the platform runtime tests: a store on SQLite and on a private PostgreSQL 15."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import PostgresServer, PostgresUnavailable, fresh_pg_url, start_postgres

from recforge.platform.store import Store


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL per test session; missing binaries FAIL the tests (no skip)."""
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL tests cannot run: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    return fresh_pg_url(request.getfixturevalue("pg_server"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh store, once on SQLite and once on PostgreSQL."""
    s = Store(store_url)
    yield s
    s.close()


#: unprivileged OS users replicas of the test groups run as (created by scripts/test.sh on CI,
#: or here when missing).
JOB_USERS = ("rfjob-ml", "rfjob-cv")


@pytest.fixture(scope="session")
def job_users() -> tuple[str, ...]:
    """The test job users exist (useradd when missing); not running as root FAILS the tests:
    switching users is what they check."""
    import os
    import pwd
    import shutil
    import subprocess

    if os.geteuid() != 0:
        pytest.fail("running replicas as other users needs root (CI runs the suite as root)",
                    pytrace=False)  # fmt: skip
    for user in JOB_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            useradd = shutil.which("useradd")
            if useradd is None:
                pytest.fail("useradd is missing: install passwd (Debian)", pytrace=False)
            cmd = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]
            subprocess.run(cmd, check=True, capture_output=True)
    return JOB_USERS
