"""``GET /overview``, the queue and quota view behind the UI's "Queues & quota" page: pending
jobs in scheduling order, admitted counts and usage beside quotas, each user seeing only their
own group's queues and usage (admins: all)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import Platform, job_spec, make_platform


@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    p = make_platform(tmp_path)
    yield p
    p.close()


def _overview(plat: Platform, who: str) -> dict:
    r = plat.client.get("/overview", headers=plat.auth(who))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_queues_and_usage_per_group_and_cluster_and_who_sees_what(plat: Platform) -> None:
    hold = [sys.executable, "-c", "import time; time.sleep(600)"]  # holds its quota
    big = plat.submit("alice", job_spec("big", cpu=2, command=hold))["id"]
    small = plat.submit("bob", job_spec("small", cpu=1, command=hold))["id"]
    cv = plat.submit("carol", job_spec("cv-job", queue="cv-q", cpu=0.5))["id"]
    alice = _overview(plat, "alice")
    assert alice["queues"] == [{"name": "ml-q", "group": "ml", "pending": [small, big],
                                "held": 0, "admitted": 0}]  # small jobs first
    (cluster,) = alice["clusters"]
    assert cluster["name"] == "local"
    assert (cluster["capacity"]["cpu"], cluster["capacity"]["memory"]) == (4, 4096)
    assert [g["group"] for g in cluster["groups"]] == ["ml"]  # nothing of cv
    ml = cluster["groups"][0]
    assert ml["used"]["cpu"] == 0 and ml["nominal"]["cpu"] == 2
    assert ml["borrowing_limit"]["cpu"] == 0
    # pods the quota does not name follow the cluster's pods, as the scheduler applies them
    assert ml["nominal"]["pods"] == cluster["capacity"]["pods"] == 110
    carol = _overview(plat, "carol")
    assert [q["name"] for q in carol["queues"]] == ["cv-q"]
    assert carol["queues"][0]["pending"] == [cv]
    assert [g["group"] for g in carol["clusters"][0]["groups"]] == ["cv"]
    admin = _overview(plat, "admin")
    assert [q["name"] for q in admin["queues"]] == ["cv-q", "ml-q"]
    # One pass admits what fits: small (1 of ml's 2 cores); big (2) must wait.
    plat.service.tick()
    states = {j: plat.client.get(f"/jobs/{j}", headers=plat.auth("admin")).json()["state"]
              for j in (big, small, cv)}  # fmt: skip
    assert states[big] == "PENDING" and states[small] in ("STARTING", "RUNNING")
    assert states[cv] != "PENDING"
    alice = _overview(plat, "alice")
    assert alice["queues"][0]["pending"] == [big]
    ml = alice["clusters"][0]["groups"][0]
    assert alice["queues"][0]["admitted"] == 1 and ml["used"]["cpu"] == 1
    free = alice["clusters"][0]["free"]["cpu"]
    used_all = sum(g["used"]["cpu"] for g in _overview(plat, "admin")["clusters"][0]["groups"])
    assert free == 4 - used_all  # free is the cluster's, whoever uses it


def test_overview_needs_a_token(plat: Platform) -> None:
    assert plat.client.get("/overview").status_code == 401
