"""Property-based run of the whole OpenAPI spec: no generated request may yield a 5xx.

Each operation gets at most 30 generated requests as an admin and 15 as a user (valid and
invalid bodies, queries and paths), sent in-process to the app over a real service on a temporary
SQLite store: the admin reaches every handler, including config changes, the user exercises the
403/404 paths. Responses must also match the documented status codes and schemas. The scheduling
loop is not running, so generated jobs are never launched.

The schema is loaded at import (schemathesis' lazy ``from_fixture`` loader does not work with
the installed pytest 9), so the platform is built at import in a temporary directory and torn
down by a module-scoped fixture.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_support import make_platform
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

_TMP = Path(tempfile.mkdtemp(prefix="recforge-schemathesis-"))
PLATFORM = make_platform(_TMP)
schema = schemathesis.openapi.from_asgi("/openapi.json", PLATFORM.client.app)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
# A plain user mostly reaches the same handlers' 403/404 exits: fewer examples suffice.
FUZZ_USER = settings(FUZZ, max_examples=15)


@pytest.fixture(scope="module", autouse=True)
def _teardown_platform() -> Iterator[None]:
    yield
    PLATFORM.close()
    shutil.rmtree(_TMP, ignore_errors=True)


@schema.parametrize()
@FUZZ
def test_no_server_errors_as_admin(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=PLATFORM.auth("admin"), checks=CHECKS)


@schema.parametrize()
@FUZZ_USER
def test_no_server_errors_as_user(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=PLATFORM.auth("alice"), checks=CHECKS)
