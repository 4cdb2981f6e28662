"""The access rules (model/access.py RULES, docs/PLATFORM.md) and token authentication, as a
complete table of who may do what, plus the token cache's bounds (expiry, revocation).

The expected answers are written from the rules' text, not from the functions.
"""

from __future__ import annotations

import itertools
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from recforge.platform.api import auth as auth_module
from recforge.platform.api.auth import TokenAuth
from recforge.platform.model.access import (
    ADMIN_GROUP,
    may_cancel,
    may_see_group,
    may_see_template,
    may_submit_to,
)
from recforge.platform.store import Store


@dataclass(frozen=True)
class P:
    name: str
    group: str
    is_admin: bool = False


ALICE, BOB, CAROL = P("alice", "ml"), P("bob", "ml"), P("carol", "cv")
ADMIN = P("admin", ADMIN_GROUP, True)
OTHER_ADMIN = P("root2", "ops", True)  # an admin outside the admin group is still an admin
PEOPLE = [ALICE, BOB, CAROL, ADMIN, OTHER_ADMIN]
GROUPS = ["ml", "cv", ADMIN_GROUP, "ops", "nobody"]
OWNERS = ["alice", "bob", "carol", "admin"]


@pytest.mark.parametrize(("who", "group"), list(itertools.product(PEOPLE, GROUPS)))
def test_seeing_jobs_and_submitting_is_for_the_own_group_or_admins(who: P, group: str) -> None:
    expected = who.is_admin or who.group == group
    assert may_see_group(who, group) is expected
    assert may_submit_to(who, group) is expected


@pytest.mark.parametrize(("who", "owner"), list(itertools.product(PEOPLE, OWNERS)))
def test_cancelling_is_for_the_submitter_or_admins(who: P, owner: str) -> None:
    # A group-mate may see the job but not cancel it.
    assert may_cancel(who, owner) is (who.is_admin or who.name == owner)


@pytest.mark.parametrize(("who", "owner"), list(itertools.product(PEOPLE, GROUPS)))
def test_templates_of_the_own_group_or_admin_are_visible(who: P, owner: str) -> None:
    expected = who.is_admin or owner in (who.group, ADMIN_GROUP)
    assert may_see_template(who, owner) is expected


def test_group_mates_see_each_other_but_cancel_only_their_own() -> None:
    assert may_see_group(BOB, ALICE.group) and not may_cancel(BOB, "alice")
    assert not may_see_group(CAROL, "ml") and not may_cancel(CAROL, "alice")
    assert not may_submit_to(CAROL, "ml") and may_submit_to(CAROL, "cv")
    assert may_see_template(CAROL, ADMIN_GROUP) and not may_see_template(CAROL, "ml")


class _Clocks:
    """One fake time for the store's wall clock and the cache's monotonic clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> _Clocks:
    c = _Clocks()
    monkeypatch.setattr(auth_module, "time", types.SimpleNamespace(monotonic=c.monotonic))
    return c


@pytest.fixture
def store(tmp_path: Path, clocks: _Clocks) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'p.db'}", clock=clocks.wall)
    s.add_user("alice", "ml")
    s.add_user("boss", "ml", is_admin=True)
    return s


def test_tokens_resolve_to_their_users_and_nothing_else(store: Store) -> None:
    auth = TokenAuth(store, admin_token="bootstrap-secret-123", cache_seconds=0)
    alice = store.issue_token("alice")
    boss = store.issue_token("boss")
    assert auth(alice) == store.get_user("alice")
    assert auth(alice).is_admin is False  # type: ignore[union-attr]
    assert auth(boss).is_admin is True  # type: ignore[union-attr]
    admin = auth("bootstrap-secret-123")
    assert admin is not None and (admin.name, admin.is_admin) == ("admin", True)
    for bad in ("bootstrap-secret-12", "bootstrap-secret-1234", alice[:-1], alice + "x", "x"):
        assert auth(bad) is None, bad
    assert TokenAuth(store, admin_token=None)("bootstrap-secret-123") is None


def test_an_expired_token_is_refused_even_when_cached(store: Store, clocks: _Clocks) -> None:
    auth = TokenAuth(store, cache_seconds=3600)
    token = store.issue_token("alice", ttl_seconds=60)
    assert auth(token) is not None
    clocks.now += 59
    assert auth(token) is not None  # still valid
    clocks.now += 2  # past the expiry, far inside the cache time
    assert store.authenticate(token) is None
    assert auth(token) is None


def test_the_cache_lasts_cache_seconds_and_forget_drops_it(store: Store, clocks: _Clocks) -> None:
    auth = TokenAuth(store, cache_seconds=5)
    token, info = store.issue_token_info("alice", ttl_seconds=None)
    assert auth(token) is not None
    assert store.revoke_token(info.token_id)
    clocks.now += 6  # the cached answer has aged out: the revocation shows
    assert auth(token) is None

    token2, info2 = store.issue_token_info("alice", ttl_seconds=None)
    assert auth(token2) is not None
    assert store.revoke_token(info2.token_id)
    auth.forget()  # what the service does on revocation: no waiting
    assert auth(token2) is None
