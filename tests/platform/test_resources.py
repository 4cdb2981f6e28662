"""Clusters, quotas and the quota book (Kueue-style nominal / borrowing / lending)."""

from __future__ import annotations

import random

import pytest

from recforge.platform.model.config import Cluster, Group, GroupQuota, parse_platform_config
from recforge.platform.model.resources import Resources
from recforge.platform.model.specs import SpecError
from recforge.platform.scheduling import QuotaBook, QuotaError, UnknownResource

R = Resources


def book_two_groups() -> QuotaBook:
    cfg = parse_platform_config(
        """
clusters:
  - {name: c, type: kubernetes, capacity: {cpu: 10, memory: 10Gi, gpu: 4}}
groups:
  - name: a
    quotas:
      - {cluster: c, nominal: {cpu: 5, memory: 5Gi, gpu: 2},
         borrowing_limit: {cpu: 2, memory: 1Gi, gpu: 0}}
  - name: b
    quotas:
      - {cluster: c, nominal: {cpu: 5, memory: 5Gi, gpu: 2},
         lending_limit: {cpu: 1, memory: 1Gi, gpu: 1}}
queues: [{name: qa, group: a}, {name: qb, group: b}]
""",
        source="platform.yaml",
    )
    return QuotaBook(cfg.clusters, cfg.groups)


def test_available_follows_nominal_borrowing_and_lending_limits() -> None:
    book = book_two_groups()
    # a: own nominal 5 + what b lends (1) = 6 cpu; borrowing limit (2) is not the binding one.
    # Pods: nobody wrote any, so each group may have up to the cluster's 110 (the default).
    assert book.available("a", "c") == R(cpu=6, memory=6144, gpu=2, pods=110)
    # b: lends at most 1 cpu, borrows a's whole idle nominal (a has no lending limit).
    assert book.available("b", "c") == R(cpu=10, memory=10240, gpu=4, pods=110)
    ok, why = book.can_admit("a", "c", R(cpu=7))
    assert not ok and "cpu: needs 7, 6 available" in why
    book.reserve("j1", "a", "c", [R(cpu=3), R(cpu=3)])
    assert book.usage("a", "c") == R(cpu=6)
    assert book.available("b", "c") == R(cpu=4, memory=10240, gpu=4, pods=110)  # guarantee kept
    book.reserve("j2", "b", "c", [R(cpu=4, gpu=4)])
    assert book.available("a", "c") == R(memory=6144, pods=110)
    assert book.release("j1") == R(cpu=6)
    # b took a's 2 gpu while they were idle; a gets them back only when b releases.
    assert book.available("a", "c") == R(cpu=6, memory=6144, pods=110)
    assert book.max_possible_vec("a", "c") == [6000, 6144, 2, 110]


def test_reserve_is_atomic_and_release_needs_a_holder() -> None:
    book = book_two_groups()
    with pytest.raises(QuotaError, match="cannot reserve 'g' on 'c' for group 'a': cpu: needs 7"):
        book.reserve("g", "a", "c", [R(cpu=4), R(cpu=3)])
    assert book.usage("a") == R() and book.reservation("g") is None
    book.reserve("g", "a", "c", [R(cpu=1)])
    with pytest.raises(QuotaError, match="already holds"):
        book.reserve("g", "a", "c", [R(cpu=1)])
    book.release("g")
    with pytest.raises(QuotaError, match="holds no reservation"):
        book.release("g")


def test_unknown_names_fail_clearly() -> None:
    book = book_two_groups()
    with pytest.raises(UnknownResource, match=r"unknown resource\(s\) \['tpu'\]"):
        book.vec(R(extended={"tpu": 1}))
    assert book.can_admit("zzz", "c", R()) == (False, "unknown group 'zzz'; known: ['a', 'b']")
    assert not book.can_admit("a", "nope", R())[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queues": [{"name": "q", "group": "ghost"}]}, "queue 'q' names unknown group 'ghost'"),
        (
            {"groups": [{"name": "g", "quotas": [{"cluster": "mars", "nominal": {}}]}]},
            "quota for unknown cluster 'mars'",
        ),
        (
            {
                "groups": [
                    {
                        "name": "g",
                        "quotas": [
                            {"cluster": "c", "nominal": {"cpu": 12}, "lending_limit": {"cpu": 1}}
                        ],
                    }
                ]
            },
            "guaranteed quotas on cluster 'c' exceed its capacity (cpu: 11 > 10)",
        ),
        (
            {
                "groups": [
                    {
                        "name": "g",
                        "quotas": [{"cluster": "c", "nominal": {}, "lending_limit": {"cpu": 1}}],
                    }
                ]
            },
            "lending_limit: ",
        ),
        ({"clusters": [{"name": "c", "type": "yarn", "capacity": {}}]}, "clusters.0.type"),
    ],
)
def test_config_errors(change: dict, message: str) -> None:
    data = {
        "clusters": [{"name": "c", "type": "local", "capacity": {"cpu": 10}}],
        "groups": [{"name": "g", "quotas": [{"cluster": "c", "nominal": {"cpu": 10}}]}],
        "queues": [{"name": "q", "group": "g"}],
        **change,
    }
    with pytest.raises(SpecError, match=r"platform\.yaml") as err:
        parse_platform_config(data, source="platform.yaml")
    assert message in str(err.value)


def test_new_cluster_with_a_new_resource_extends_the_book() -> None:
    book = book_two_groups()
    book.reserve("j", "a", "c", [R(cpu=1)])
    fpga = Cluster(name="f", type="local", capacity=R(cpu=4, extended={"fpga": 2}))
    book.add_cluster(fpga, {"a": GroupQuota(cluster="f", nominal=R(cpu=4, extended={"fpga": 2}))})
    assert book.dims == ("cpu", "memory", "gpu", "pods", "fpga")
    assert book.available("a", "f") == R(cpu=4, pods=110, extended={"fpga": 2})
    assert book.available("a", "c").extended == {}  # no fpga on c
    assert not book.has_quota("b", "f")
    assert book.release("j") == R(cpu=1)
    with pytest.raises(QuotaError, match="exceed its capacity"):
        book.add_cluster(
            Cluster(name="tiny", type="local", capacity=R(cpu=1)),
            {"b": GroupQuota(cluster="tiny", nominal=R(cpu=2), lending_limit=R())},
        )
    assert "tiny" not in book.clusters


def test_random_reservations_keep_every_invariant() -> None:
    rng = random.Random(3)
    clusters = [Cluster(name=f"c{i}", type="local", capacity=R(cpu=20, gpu=8)) for i in range(2)]
    groups = []
    for g in range(4):
        quotas = [
            GroupQuota(
                cluster=c.name,
                nominal=R(cpu=5, gpu=2),
                borrowing_limit=None if g % 2 else R(cpu=3, gpu=1),
                lending_limit=R(cpu=2, gpu=1) if g < 2 else None,
            )
            for c in clusters
        ]
        groups.append(Group(name=f"g{g}", quotas=quotas, total_cap=R(cpu=14, gpu=8)))
    book = QuotaBook(clusters, groups)
    held: dict[str, tuple[str, str, Resources]] = {}
    for step in range(1000):
        if held and rng.random() < 0.4:
            key = rng.choice(sorted(held))
            assert book.release(key) == held.pop(key)[2]
        else:
            gname, cname = f"g{rng.randrange(4)}", f"c{rng.randrange(2)}"
            req = R(cpu=rng.randint(0, 6), gpu=rng.randint(0, 2))
            ok, _ = book.can_admit(gname, cname, req)
            if ok:
                book.reserve(f"k{step}", gname, cname, [req])
                held[f"k{step}"] = (gname, cname, req)
            else:
                with pytest.raises(QuotaError):
                    book.reserve(f"k{step}", gname, cname, [req])
        for cl in clusters:
            used = Resources.total([r for _, c, r in held.values() if c == cl.name])
            assert used.fits(cl.capacity)
            for grp in groups:
                q = grp.quota(cl.name)
                assert q is not None
                mine = Resources.total(
                    [r for g, c, r in held.values() if c == cl.name and g == grp.name]
                )
                assert book.usage(grp.name, cl.name) == mine
                if q.borrowing_limit is not None:
                    assert mine.fits(q.nominal.add(q.borrowing_limit))
                # The unused guaranteed part is always still obtainable by its owner.
                unused = Resources(
                    cpu=max(0.0, q.guaranteed.cpu - mine.cpu),
                    gpu=max(0, q.guaranteed.gpu - mine.gpu),
                )
                cap_left = grp.total_cap.sub(book.usage(grp.name))  # type: ignore[union-attr]
                want = Resources(
                    cpu=min(unused.cpu, cap_left.cpu), gpu=min(unused.gpu, cap_left.gpu)
                )
                assert want.fits(book.available(grp.name, cl.name))
        for grp in groups:
            assert book.usage(grp.name).fits(grp.total_cap)  # type: ignore[arg-type]


def test_borrowing_stops_at_the_borrowing_limit() -> None:
    cfg = parse_platform_config(
        {
            "clusters": [{"name": "c", "type": "local", "capacity": {"cpu": 10}}],
            "groups": [
                {
                    "name": "a",
                    "quotas": [
                        {"cluster": "c", "nominal": {"cpu": 4}, "borrowing_limit": {"cpu": 2}}
                    ],
                },
                {"name": "b", "quotas": [{"cluster": "c", "nominal": {"cpu": 6}}]},
            ],
            "queues": [{"name": "qa", "group": "a"}],
        }
    )
    book = QuotaBook(cfg.clusters, cfg.groups)
    # 4 nominal + 2 borrowed, although 10 are idle
    assert book.available("a", "c") == R(cpu=6, pods=110)
    book.reserve("x", "a", "c", [R(cpu=4), R(cpu=2)])
    ok, why = book.can_admit("a", "c", R(cpu=0.001))
    assert not ok and "nominal + borrowing limit" in why
    assert book.available("b", "c") == R(cpu=4, pods=110)  # the rest, not its whole nominal


def test_pods_bound_what_no_other_resource_does() -> None:
    """Every replica counts a pod: a cluster has 110 per node unless it says otherwise, a quota
    that names no pods gets the cluster's, and one that names them narrows the group."""
    cfg = parse_platform_config(
        {
            "clusters": [
                {"name": "c", "type": "local", "capacity": {"cpu": 4}},
                {"name": "n", "type": "local", "capacity": {"cpu": 8},
                 "nodes": [{"cpu": 4}, {"cpu": 4, "pods": 20}]},
            ],
            "groups": [
                {"name": "a", "quotas": [{"cluster": "c", "nominal": {"cpu": 2, "pods": 8}},
                                         {"cluster": "n", "nominal": {"cpu": 8}}]},
                {"name": "b", "quotas": [{"cluster": "c", "nominal": {"cpu": 2},
                                          "lending_limit": {"cpu": 1}}]},
            ],
            "queues": [{"name": "qa", "group": "a"}],
        }
    )
    c, n = cfg.clusters
    assert c.capacity.pods == 110 and n.capacity.pods == 130  # 110 + 20 for the nodes
    book = QuotaBook(cfg.clusters, cfg.groups)
    # a names 8 pods on c (and borrows b's lendable pods: b's lending limit names no pods, so
    # all of b's pods are lendable); on n it gets the cluster's 130.
    assert book.available("a", "c").pods == 110 and book.available("a", "n").pods == 130
    book.reserve("zero", "a", "c", [R(pods=1)] * 100)  # replicas asking for nothing but a pod
    assert book.available("a", "c").pods == 10
    assert not book.can_admit("a", "c", R(pods=11))[0]
