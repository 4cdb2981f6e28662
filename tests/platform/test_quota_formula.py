"""The quota book against its documented formula, on seeded random configurations.

From recforge.platform.scheduling.quota's docstring, per resource, group g on cluster c may take::

    min(nominal_g + borrowing_limit_g - used_g,
        max(0, guaranteed_g - used_g) + min(pool_c - pool_used_c, unprotected_free_c),
        total_cap_g - used_g_all_clusters)

with guaranteed = nominal - lending_limit (0 when no lending limit: all of nominal is lendable),
pool_c = sum_h (nominal_h - guaranteed_h), pool_used_c = sum_h max(0, used_h - guaranteed_h),
unprotected_free_c = capacity_c - used_c - sum_h max(0, guaranteed_h - used_h), never below 0.
A gang is reserved whole when it fits that bound, else nothing changes. The model below tracks
usage itself (cpu, in millicores) and compares after every reserve and release.
"""

from __future__ import annotations

import random

import pytest

from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.resources import Resources
from recforge.platform.scheduling.quota import QuotaBook, QuotaError

INF = float("inf")


def _config(rng: random.Random) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """A random valid platform (guarantees within capacity) and the model's view of it."""
    while True:
        cfg, model = _draw(rng)
        if all(sum(lim["guaranteed"] for (_g, d), lim in model["limits"].items() if d == c)
               <= cap for c, cap in model["clusters"].items()):
            return cfg, model


def _draw(rng: random.Random) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """A random platform (cpu only; memory ample) and the model's view of its limits."""
    clusters = {f"c{k}": rng.choice([4, 6, 8]) for k in range(rng.choice([1, 2]))}
    groups = []
    limits: dict[tuple[str, str], dict[str, float]] = {}
    caps: dict[str, float] = {}
    for g in range(3):
        name = f"g{g}"
        quotas = []
        for c, cap in clusters.items():
            if rng.random() < 0.2:
                continue  # no quota here
            nominal = rng.choice([0, 1, 2, 3]) if cap > 4 else rng.choice([0, 1])
            q = {"cluster": c, "nominal": {"cpu": nominal, "memory": "64Gi"}}
            borrow = rng.choice([None, 0, 1, 2])
            lend = rng.choice([None, 0, nominal // 2, nominal])
            if borrow is not None:
                q["borrowing_limit"] = {"cpu": borrow, "memory": "64Gi"}
            if lend is not None:
                q["lending_limit"] = {"cpu": lend, "memory": 0}
            quotas.append(q)
            limits[(name, c)] = {
                "nominal": nominal * 1000,
                "borrow": INF if borrow is None else borrow * 1000,
                "guaranteed": 0 if lend is None else (nominal - lend) * 1000,
            }
        group = {"name": name, "quotas": quotas}
        if rng.random() < 0.3:
            cap_cpu = rng.choice([1, 2, 3])
            group["total_cap"] = {"cpu": cap_cpu, "memory": "256Gi"}
            caps[name] = cap_cpu * 1000
        else:
            caps[name] = INF
        groups.append(group)
    cfg = {
        "clusters": [{"name": c, "type": "local",
                      "capacity": {"cpu": cap, "memory": "1024Gi", "pods": 1000}}
                     for c, cap in clusters.items()],
        "groups": groups,
        "queues": [{"name": f"q{g['name']}", "group": g["name"]} for g in groups],
    }
    model = {"clusters": {c: cap * 1000 for c, cap in clusters.items()}, "limits": limits,
             "caps": caps}
    return cfg, model


def _expected(model: dict, used: dict, group: str, cluster: str) -> float:  # type: ignore[type-arg]
    lim = model["limits"][(group, cluster)]
    here = {g: u for (g, c), u in used.items() if c == cluster}
    u = here.get(group, 0)
    own = lim["nominal"] + lim["borrow"] - u
    slots = {g: model["limits"][(g, c)] for (g, c) in model["limits"] if c == cluster}
    pool = sum(s["nominal"] - s["guaranteed"] for s in slots.values())
    pool_used = sum(max(0, here.get(g, 0) - s["guaranteed"]) for g, s in slots.items())
    unused_guaranteed = sum(max(0, s["guaranteed"] - here.get(g, 0)) for g, s in slots.items())
    unprotected = model["clusters"][cluster] - sum(here.values()) - unused_guaranteed
    shared = max(0, min(pool - pool_used, unprotected))
    total = sum(v for (g, _c), v in used.items() if g == group)
    return max(0, min(own, max(0, lim["guaranteed"] - u) + shared, model["caps"][group] - total))


@pytest.mark.parametrize("seed", range(40))
def test_available_and_reserve_follow_the_formula(seed: int) -> None:
    rng = random.Random(seed)
    cfg_dict, model = _config(rng)
    cfg = parse_platform_config(cfg_dict)
    book = QuotaBook(cfg.clusters, cfg.groups)
    used: dict[tuple[str, str], int] = {}
    held: dict[str, tuple[str, str, int]] = {}
    slots = sorted(model["limits"])
    if not slots:
        return
    accepted = refused = 0
    for step in range(60):
        for g, c in slots:
            got = round(book.available(g, c).cpu * 1000)
            assert got == _expected(model, used, g, c), (seed, step, g, c, used)
        if held and rng.random() < 0.35:
            key = rng.choice(sorted(held))
            g, c, amount = held.pop(key)
            assert round(book.release(key).cpu * 1000) == amount
            used[(g, c)] -= amount
            continue
        g, c = rng.choice(slots)
        parts = [rng.choice([0.5, 1.0]) for _ in range(rng.choice([1, 2]))]  # a gang
        amount = round(sum(parts) * 1000)
        fits = amount <= _expected(model, used, g, c)
        key = f"j{step}"
        if fits:
            book.reserve(key, g, c, [Resources(cpu=p) for p in parts])
            held[key] = (g, c, amount)
            used[(g, c)] = used.get((g, c), 0) + amount
            accepted += 1
        else:
            with pytest.raises(QuotaError):
                book.reserve(key, g, c, [Resources(cpu=p) for p in parts])
            refused += 1
    assert accepted + refused > 0


def test_the_random_cases_exercise_every_limit() -> None:
    """The seeds above reach each term of the formula as the binding one at least once."""
    binding: set[str] = set()
    for seed in range(40):
        rng = random.Random(seed)
        _cfg, model = _config(rng)
        for (g, c), lim in model["limits"].items():
            used: dict[tuple[str, str], int] = {}
            own = lim["nominal"] + lim["borrow"]
            slots = {h: model["limits"][(h, d)] for (h, d) in model["limits"] if d == c}
            pool = sum(s["nominal"] - s["guaranteed"] for s in slots.values())
            unprotected = model["clusters"][c] - sum(s["guaranteed"] for s in slots.values())
            shared = lim["guaranteed"] + max(0, min(pool, unprotected))
            cap = model["caps"][g]
            best = _expected(model, used, g, c)
            for name, value in (("own", own), ("shared", shared), ("cap", cap)):
                if value == best and value < INF:
                    binding.add(name)
    assert binding == {"own", "shared", "cap"}
