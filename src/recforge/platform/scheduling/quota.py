"""The quota book: usage per (group, cluster) and whole-gang reservations against quotas.

The rules are Kueue's nominal quota / borrowing / lending (see :mod:`recforge.platform.model.
config`). In numbers, per resource, a group ``g`` on cluster ``c`` may take at most::

    min(nominal_g + borrowing_limit_g - used_g,
        max(0, guaranteed_g - used_g) + min(pool_c - pool_used_c, unprotected_free_c),
        total_cap_g - used_g_all_clusters)

where ``pool_used_c = sum_h max(0, used_h - guaranteed_h)`` and ``unprotected_free_c`` is the
cluster's free capacity minus every group's unused guarantee. Lent quota comes back when the
borrower's jobs finish, or earlier through preemption (:mod:`recforge.platform.scheduling.
preemption`), which uses :meth:`QuotaBook.borrowed` to find borrowers.

:class:`QuotaBook` keeps usage in exact integers (millicores, MiB, GPUs, pods, milli-units of
extended resources) and reserves a whole gang atomically or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from recforge.platform.model.config import Cluster, Group, GroupQuota, quota_with_pod_defaults
from recforge.platform.model.resources import CORE_RESOURCES, Resources
from recforge.platform.scheduling.errors import QuotaError, UnknownResource

__all__ = ["INF", "QuotaBook", "QuotaError", "Shortage", "UnknownResource"]

INF = 1 << 62  # "no limit" in integer units; far above any real amount
_SCALE = {"cpu": 1000, "memory": 1, "gpu": 1, "pods": 1}  # extended resources: 1000 (milli-units)
_CORE = len(CORE_RESOURCES)


@dataclass(frozen=True)
class Shortage:
    """One resource a request cannot get now: what it needs, what is free to it, and why."""

    resource: str
    needed: float
    available: float
    limited_by: str  # "cluster capacity" | "group quota" | "shared pool" | "group total cap" ...

    def __str__(self) -> str:
        return f"{self.resource}: needs {self.needed:g}, {self.available:g} available " + (
            f"(limited by {self.limited_by})"
        )


class _Slot:
    """Quota limits and usage of one group on one cluster, as integer vectors."""

    __slots__ = ("group", "guaranteed", "lendable", "max_use", "nominal", "used")

    def __init__(
        self,
        group: str,
        nominal: list[int],
        max_use: list[int],
        guaranteed: list[int],
        lendable: list[int],
    ):
        self.group = group
        self.nominal = nominal
        self.max_use = max_use
        self.guaranteed = guaranteed
        self.lendable = lendable
        self.used = [0] * len(max_use)


class _ClusterState:
    __slots__ = (
        "cap",
        "cluster",
        "pool",
        "pool_used",
        "slots",
        "unused_guaranteed",
        "used",
        "version",
    )

    def __init__(self, cluster: Cluster, cap: list[int]):
        self.cluster = cluster
        self.cap = cap
        n = len(cap)
        self.used = [0] * n
        self.pool = [0] * n
        self.pool_used = [0] * n
        self.unused_guaranteed = [0] * n
        self.slots: dict[str, _Slot] = {}
        # the book's change count at the last change of usage here (keys cached availability)
        self.version = 0


class QuotaBook:
    """Tracks usage per (group, cluster) and admits whole gangs against quotas and capacity.

    Resource amounts are mapped to integer vectors over :attr:`dims` (``cpu``, ``memory``,
    ``gpu``, then extended resource names, sorted). A request naming a resource absent from every
    cluster raises :class:`UnknownResource`.
    """

    def __init__(self, clusters: Iterable[Cluster] = (), groups: Iterable[Group] = ()):
        self.dims: tuple[str, ...] = CORE_RESOURCES
        self._scale: tuple[int, ...] = tuple(_SCALE[d] for d in self.dims)
        self._clusters: dict[str, _ClusterState] = {}
        self._groups: dict[str, Group] = {}
        self._group_used: dict[str, list[int]] = {}
        self._group_cap: dict[str, list[int]] = {}
        self._reservations: dict[str, tuple[str, str, list[int]]] = {}
        self._capped: list[str] = []  # groups with a total cap (see :meth:`version`)
        # available_vec(g, c) depends on cluster c's state and g's usage summed over clusters:
        # cache it until either changes (schedulers ask the same question many times per pass).
        self._group_version: dict[str, int] = {}
        self._avail_cache: dict[tuple[str, str], tuple[int, int, list[int]]] = {}
        self._max_cache: dict[tuple[str, str], list[int]] = {}
        self._borrow_cache: dict[tuple[str, str], tuple[int, list[int]]] = {}
        self.changes = 0  # bumped on every reservation or release (memo keys of the cycle)
        self._clock = 0  # source of versions (see _apply)
        for g in groups:
            self._groups[g.name] = g
        for c in clusters:
            self.add_cluster(c)
        for g in self._groups.values():
            self._install_group(g)

    # -- configuration ------------------------------------------------------------------------
    @property
    def clusters(self) -> dict[str, Cluster]:
        return {name: st.cluster for name, st in self._clusters.items()}

    @property
    def groups(self) -> dict[str, Group]:
        return dict(self._groups)

    def add_cluster(self, cluster: Cluster, quotas: Mapping[str, GroupQuota] | None = None) -> None:
        """Register a cluster; ``quotas`` (group name -> quota on it) extend registered groups."""
        if cluster.name in self._clusters:
            raise QuotaError(f"cluster {cluster.name!r} is already registered")
        updated = dict(self._groups)
        for gname, q in (quotas or {}).items():
            g = updated.get(gname)
            if g is None:
                raise QuotaError(f"quota for unknown group {gname!r}")
            if q.cluster != cluster.name:
                raise QuotaError(f"quota of group {gname!r} names cluster {q.cluster!r}")
            if g.quota(cluster.name) is not None:
                raise QuotaError(f"group {gname!r} already has a quota on {cluster.name!r}")
            updated[gname] = g.model_copy(update={"quotas": [*g.quotas, q]})
        guaranteed = Resources.total(
            [
                quota_with_pod_defaults(gq, cluster).guaranteed
                for g in updated.values()
                if (gq := g.quota(cluster.name)) is not None
            ]
        )
        short = guaranteed.shortfall(cluster.capacity)
        if short:
            detail = ", ".join(f"{k}: {n:g} > {a:g}" for k, (n, a) in short.items())
            raise QuotaError(
                f"guaranteed quotas on cluster {cluster.name!r} exceed its capacity ({detail})"
            )
        self._groups = updated
        self._grow_dims(cluster.capacity.extended)
        state = _ClusterState(cluster, self.vec(cluster.capacity))
        self._clusters[cluster.name] = state
        for g in self._groups.values():
            quota = g.quota(cluster.name)
            if quota is not None:
                self._install_slot(state, g.name, quota)

    def add_group(self, group: Group) -> None:
        """Register a new group (its quotas must name registered clusters)."""
        if group.name in self._groups:
            raise QuotaError(f"group {group.name!r} is already registered")
        self._groups[group.name] = group
        self._install_group(group)

    def _install_group(self, g: Group) -> None:
        self._limits_changed()
        for q in g.quotas:
            if q.cluster not in self._clusters:
                raise QuotaError(f"group {g.name!r} has a quota for unknown cluster {q.cluster!r}")
        self._group_used.setdefault(g.name, [0] * len(self.dims))
        cap = [INF] * len(self.dims) if g.total_cap is None else self._vec_limit(g.total_cap)
        if g.total_cap is not None and "pods" not in g.total_cap.model_fields_set:
            cap[CORE_RESOURCES.index("pods")] = INF  # a cap that does not mention pods
        self._group_cap[g.name] = cap
        if any(x < INF for x in cap):  # its usage elsewhere limits what it may take anywhere
            self._capped.append(g.name)
        for q in g.quotas:
            st = self._clusters[q.cluster]
            if g.name not in st.slots:
                self._install_slot(st, g.name, q)

    def _install_slot(self, st: _ClusterState, group: str, q: GroupQuota) -> None:
        self._limits_changed()
        q = quota_with_pod_defaults(q, st.cluster)
        # Limits naming a resource no cluster has are harmless: such requests are refused anyway.
        nominal = self._vec_limit(q.nominal)
        guaranteed = self._vec_limit(q.guaranteed)
        borrow = (
            [INF] * len(self.dims)
            if q.borrowing_limit is None
            else self._vec_limit(q.borrowing_limit)
        )
        max_use = [min(INF, n + b) for n, b in zip(nominal, borrow, strict=True)]
        lendable = [n - g for n, g in zip(nominal, guaranteed, strict=True)]
        slot = _Slot(group, nominal, max_use, guaranteed, lendable)
        for i in range(len(self.dims)):
            st.pool[i] += lendable[i]
            st.unused_guaranteed[i] += guaranteed[i]
        if any(
            ug > c for ug, c in zip(st.unused_guaranteed, st.cap, strict=True)
        ):  # the guarantees would be promises the cluster cannot keep
            for i in range(len(self.dims)):
                st.pool[i] -= lendable[i]
                st.unused_guaranteed[i] -= guaranteed[i]
            raise QuotaError(
                f"guaranteed quotas on cluster {st.cluster.name!r} would exceed its capacity"
            )
        st.slots[group] = slot
        self._group_used.setdefault(group, [0] * len(self.dims))

    def _grow_dims(self, extended: Mapping[str, float]) -> None:
        self._limits_changed()
        new = sorted(set(extended) - set(self.dims))
        if not new:
            return
        self.dims = self.dims + tuple(new)
        self._scale = self._scale + (1000,) * len(new)
        pad = [0] * len(new)
        for st in self._clusters.values():
            # A new resource name: existing clusters have none of it, groups no quota for it.
            st.cap += pad
            st.used += pad
            st.pool += pad
            st.pool_used += pad
            st.unused_guaranteed += pad
            for s in st.slots.values():
                s.nominal += pad
                s.max_use += pad
                s.guaranteed += pad
                s.lendable += pad
                s.used += pad
        for name in self._group_used:
            self._group_used[name] += pad
        for name, cap in self._group_cap.items():
            g = self._groups[name]
            if g.total_cap is None:
                cap += [INF] * len(new)
            else:
                cap += [round(g.total_cap.extended.get(k, 0.0) * 1000) for k in new]
        for _key, (_, _, v) in self._reservations.items():
            v += pad

    # -- vectors ------------------------------------------------------------------------------
    def vec(self, r: Resources) -> list[int]:
        """``r`` as an integer vector over :attr:`dims`; unknown resource names raise."""
        unknown = [k for k in r.extended if k not in self.dims]
        if unknown:
            raise UnknownResource(
                f"unknown resource(s) {unknown}: no cluster has them (known: {list(self.dims)})"
            )
        out = [round(r.cpu * 1000), r.memory, r.gpu, r.pods]
        if len(self.dims) > _CORE:
            ext = r.extended
            out += [round(ext.get(k, 0.0) * 1000) for k in self.dims[_CORE:]]
        return out

    def _vec_limit(self, r: Resources) -> list[int]:
        return [round(r.get(d) * s) for d, s in zip(self.dims, self._scale, strict=True)]

    def to_resources(self, v: Sequence[int]) -> Resources:
        """Inverse of :meth:`vec` (``INF`` entries become very large numbers)."""
        ext = {d: v[i] / 1000 for i, d in enumerate(self.dims) if i >= _CORE and v[i]}
        return Resources._make(v[0] / 1000, int(v[1]), int(v[2]), int(v[3]), ext)

    def amount(self, dim: int, value: int) -> float:
        """A vector entry in the resource's user unit (cores, MiB, GPUs, units)."""
        return value / self._scale[dim]

    # -- queries ------------------------------------------------------------------------------
    def has_quota(self, group: str, cluster: str) -> bool:
        st = self._clusters.get(cluster)
        return st is not None and group in st.slots

    def within_nominal(self, group: str, cluster: str, request: Sequence[int]) -> bool:
        """True when ``group`` could add ``request`` on ``cluster`` without borrowing."""
        slot = self._slot(group, cluster)
        for u, r, n in zip(slot.used, request, slot.nominal):  # noqa: B905, SIM110 - hot loop
            if u + r > n:
                return False
        return True

    def fits_nominal(self, group: str, cluster: str, request: Sequence[int]) -> bool:
        """True when ``request`` alone fits in ``group``'s nominal quota on ``cluster``."""
        _, slot = self._state(group, cluster)
        return all(r <= n for r, n in zip(request, slot.nominal, strict=True))

    def unused_nominal_vec(self, group: str, cluster: str) -> list[int]:
        """Per resource, how much of its nominal quota on ``cluster`` ``group`` does not use."""
        slot = self._slot(group, cluster)
        return [n - u if n > u else 0 for n, u in zip(slot.nominal, slot.used, strict=True)]

    def _slot(self, group: str, cluster: str) -> _Slot:
        # The hot path of :meth:`_state`: a known (group, cluster) pair needs no validation.
        st = self._clusters.get(cluster)
        slot = None if st is None else st.slots.get(group)
        return self._state(group, cluster)[1] if slot is None else slot

    def version(self, clusters: Iterable[str]) -> tuple[int, ...]:
        """A token that changes whenever usage on one of ``clusters`` changes, or the usage
        anywhere of a group with a total cap: while it is equal, every quota quantity on those
        clusters (availability, usage, what others borrow) is unchanged."""
        cs = self._clusters
        return tuple(cs[c].version for c in clusters)

    def cluster_version(self, cluster: str) -> int:
        """:meth:`version` of one cluster, as a number."""
        return self._clusters[cluster].version

    def _state(self, group: str, cluster: str) -> tuple[_ClusterState, _Slot]:
        st = self._clusters.get(cluster)
        if st is None:
            raise QuotaError(f"unknown cluster {cluster!r}; known: {sorted(self._clusters)}")
        if group not in self._groups:
            raise QuotaError(f"unknown group {group!r}; known: {sorted(self._groups)}")
        slot = st.slots.get(group)
        if slot is None:
            raise QuotaError(f"group {group!r} has no quota on cluster {cluster!r}")
        return st, slot

    def available_vec(self, group: str, cluster: str) -> list[int]:
        """Per resource, the most ``group`` could take on ``cluster`` right now.

        The returned list may be shared with later calls: do not modify it.
        """
        key = (group, cluster)
        hit = self._avail_cache.get(key)
        if hit is not None:
            st0 = self._clusters[cluster]
            if hit[0] == st0.version and hit[1] == self._group_version.get(group, 0):
                return hit[2]
        st, slot = self._state(group, cluster)
        gused = self._group_used[group]
        gcap = self._group_cap[group]
        out = []
        for i in range(len(self.dims)):
            u = slot.used[i]
            own = slot.max_use[i] - u
            g_left = slot.guaranteed[i] - u
            if g_left < 0:
                g_left = 0
            unprotected = st.cap[i] - st.used[i] - st.unused_guaranteed[i]
            pool_left = st.pool[i] - st.pool_used[i]
            shared = pool_left if pool_left < unprotected else unprotected
            if shared < 0:
                shared = 0
            a = g_left + shared
            if own < a:
                a = own
            cap_left = gcap[i] - gused[i]
            if cap_left < a:
                a = cap_left
            out.append(a if a > 0 else 0)
        self._avail_cache[key] = (st.version, self._group_version.get(group, 0), out)
        return out

    def available_after_vec(
        self, group: str, cluster: str, other: str, request: Sequence[int]
    ) -> list[int]:
        """:meth:`available_vec` of ``group`` as it would be after ``other`` (another group)
        reserved ``request`` on ``cluster``; computed, nothing is reserved."""
        st = self._state_of(cluster)
        slot, oslot = self._slot(group, cluster), self._slot(other, cluster)
        assert slot is not oslot
        gused = self._group_used[group]
        gcap = self._group_cap[group]
        out = []
        for i, x in enumerate(request):
            u = slot.used[i]
            own = slot.max_use[i] - u
            g_left = slot.guaranteed[i] - u
            if g_left < 0:
                g_left = 0
            ou, og = oslot.used[i], oslot.guaranteed[i]
            o_gleft = og - ou if og > ou else 0
            # other's use of its own unused guarantee is already excluded from ``unprotected``
            unprotected = st.cap[i] - st.used[i] - st.unused_guaranteed[i] - x + min(x, o_gleft)
            o_pool = ou + x - og if ou + x > og else 0
            o_pool0 = ou - og if ou > og else 0
            pool_left = st.pool[i] - st.pool_used[i] - (o_pool - o_pool0)
            shared = pool_left if pool_left < unprotected else unprotected
            if shared < 0:
                shared = 0
            a = g_left + shared
            if own < a:
                a = own
            cap_left = gcap[i] - gused[i]
            if cap_left < a:
                a = cap_left
            out.append(a if a > 0 else 0)
        return out

    def available(self, group: str, cluster: str) -> Resources:
        """:meth:`available_vec` as :class:`Resources` (unbounded resources capped to huge)."""
        return self.to_resources(self.available_vec(group, cluster))

    def _limits_changed(self) -> None:
        # Quotas, capacities or dimensions changed: what was derived from them is stale.
        self.changes += 1
        self._clock += 1
        for st in self._clusters.values():
            st.version = self._clock
        self._avail_cache.clear()
        self._max_cache.clear()
        self._borrow_cache.clear()

    def max_possible_vec(self, group: str, cluster: str) -> list[int]:
        """Per resource, the most ``group`` could ever take on ``cluster`` (everything idle).

        Depends on the configuration only, so it is computed once per (group, cluster).
        """
        key = (group, cluster)
        hit = self._max_cache.get(key)
        if hit is None:
            hit = self._max_cache[key] = self._max_possible(group, cluster)
        return hit

    def _max_possible(self, group: str, cluster: str) -> list[int]:
        st, slot = self._state(group, cluster)
        out = []
        for i in range(len(self.dims)):
            unprotected = st.cap[i] - sum(s.guaranteed[i] for s in st.slots.values())
            shared = max(0, min(st.pool[i], unprotected))
            a = min(slot.max_use[i], slot.guaranteed[i] + shared, self._group_cap[group][i])
            out.append(max(0, a))
        return out

    def shortages(self, group: str, cluster: str, request: Resources) -> list[Shortage]:
        """Why ``request`` does not fit now: one entry per short resource with the binding limit."""
        need = self.vec(request)
        avail = self.available_vec(group, cluster)
        st, slot = self._state(group, cluster)
        out = []
        for i, d in enumerate(self.dims):
            if need[i] <= avail[i]:
                continue
            u = slot.used[i]
            candidates = [
                (st.cap[i] - st.used[i], f"cluster {cluster!r} capacity"),
                (slot.max_use[i] - u, f"group {group!r} nominal + borrowing limit"),
                (
                    self._group_cap[group][i] - self._group_used[group][i],
                    f"group {group!r} total cap across clusters",
                ),
            ]
            binding = min(candidates, key=lambda t: t[0])
            reason = binding[1]
            if binding[0] > avail[i]:
                reason = "shared pool (other groups' guarantees or lending limits)"
            out.append(Shortage(d, self.amount(i, need[i]), self.amount(i, avail[i]), reason))
        return out

    def can_admit(self, group: str, cluster: str, request: Resources) -> tuple[bool, str]:
        """Whether ``request`` (a gang's total) fits now; the reason names every short resource."""
        try:
            short = self.shortages(group, cluster, request)
        except QuotaError as exc:
            return False, str(exc)
        if short:
            return False, "; ".join(str(s) for s in short)
        return True, "fits"

    def usage(self, group: str, cluster: str | None = None) -> Resources:
        """What ``group`` uses on ``cluster`` (or on all clusters)."""
        if cluster is None:
            return self.to_resources(self._group_used[group])
        _, slot = self._state(group, cluster)
        return self.to_resources(slot.used)

    def cluster_free(self, cluster: str) -> Resources:
        st = self._clusters[cluster]
        return self.to_resources([c - u for c, u in zip(st.cap, st.used, strict=True)])

    def group_used_vec(self, group: str) -> list[int]:
        return self._group_used[group]

    def cluster_cap_vec(self, cluster: str) -> list[int]:
        return self._clusters[cluster].cap

    def borrows(self, group: str, cluster: str, dims: Sequence[int]) -> bool:
        """Whether ``group`` uses more than its nominal quota on ``cluster`` in any of ``dims``
        (vector indices): it holds lent quota there."""
        _, slot = self._state(group, cluster)
        return any(slot.used[i] > slot.nominal[i] for i in dims)

    def borrowed_by_others(self, group: str, cluster: str) -> list[int]:
        """Per resource, how much groups other than ``group`` use above their nominal quota on
        ``cluster``: what preemption could reclaim there (do not modify the list)."""
        st, own = self._state(group, cluster)
        key = (group, cluster)
        hit = self._borrow_cache.get(key)
        if hit is not None and hit[0] == st.version:
            return hit[1]
        out = [0] * len(self.dims)
        for slot in st.slots.values():
            if slot is own:
                continue
            for i, (u, n) in enumerate(zip(slot.used, slot.nominal, strict=True)):
                if u > n:
                    out[i] += u - n
        self._borrow_cache[key] = (st.version, out)
        return out

    @contextmanager
    def trial(self, cluster: str) -> Iterator[None]:
        """For tentative changes on ``cluster`` that the caller undoes exactly before the block
        ends (releases, then the same reservations again): :attr:`changes` and the versions
        that key cached availability are restored, so caches and the scheduler's memos stay
        valid. Nothing may record :attr:`changes` inside the block."""
        self._state_of(cluster)
        versions = {name: st.version for name, st in self._clusters.items()}
        saved = dict(self._group_version), self.changes
        try:
            yield
        finally:
            self._group_version, self.changes = saved
            for name, v in versions.items():
                self._clusters[name].version = v

    def _state_of(self, cluster: str) -> _ClusterState:
        st = self._clusters.get(cluster)
        if st is None:
            raise QuotaError(f"unknown cluster {cluster!r}; known: {sorted(self._clusters)}")
        return st

    def reserved_vec(self, key: str) -> list[int]:
        """The vector ``key`` holds (a copy); unknown keys raise :class:`QuotaError`."""
        r = self._reservations.get(key)
        if r is None:
            raise QuotaError(f"{key!r} holds no reservation")
        return list(r[2])

    def reservation(self, key: str) -> tuple[str, str, Resources] | None:
        r = self._reservations.get(key)
        return None if r is None else (r[0], r[1], self.to_resources(r[2]))

    # -- changes ------------------------------------------------------------------------------
    def reserve(self, key: str, group: str, cluster: str, requests: Sequence[Resources]) -> None:
        """Reserve the sum of ``requests`` (a gang) atomically under ``key``, or raise."""
        if key in self._reservations:
            raise QuotaError(f"{key!r} already holds a reservation")
        total = [0] * len(self.dims)
        for r in requests:
            for i, x in enumerate(self.vec(r)):
                total[i] += x
        avail = self.available_vec(group, cluster)
        if any(t > a for t, a in zip(total, avail, strict=True)):
            raise QuotaError(
                f"cannot reserve {key!r} on {cluster!r} for group {group!r}: "
                + self.can_admit(group, cluster, self.to_resources(total))[1]
            )
        self.reserve_vec(key, group, cluster, total)

    def reserve_vec(self, key: str, group: str, cluster: str, total: list[int]) -> None:
        """Record a reservation already checked against :meth:`available_vec` (no check here)."""
        st, slot = self._state(group, cluster)
        self._apply(st, slot, total, +1)
        self._reservations[key] = (group, cluster, list(total))

    def release(self, key: str) -> Resources:
        """Give back what ``key`` holds; returns it. Unknown keys raise :class:`QuotaError`."""
        r = self._reservations.pop(key, None)
        if r is None:
            raise QuotaError(f"{key!r} holds no reservation")
        group, cluster, total = r
        st, slot = self._state(group, cluster)
        self._apply(st, slot, total, -1)
        return self.to_resources(total)

    def _apply(self, st: _ClusterState, slot: _Slot, total: list[int], sign: int) -> None:
        # Versions are values of an ever-growing clock, never reused: a cache entry made while
        # a version was set (even a tentative one, see :meth:`trial`) cannot match a later state.
        self.changes += 1
        self._clock += 1
        st.version = self._clock
        self._group_version[slot.group] = self._clock
        if slot.group in self._capped:  # what it may take on every cluster changed
            for other in self._clusters.values():
                other.version = self._clock
        gused = self._group_used[slot.group]
        for i, x in enumerate(total):
            if not x:
                continue
            before = slot.used[i]
            after = before + sign * x
            g = slot.guaranteed[i]
            slot.used[i] = after
            st.used[i] += sign * x
            gused[i] += sign * x
            st.pool_used[i] += max(0, after - g) - max(0, before - g)
            st.unused_guaranteed[i] += max(0, g - after) - max(0, g - before)
