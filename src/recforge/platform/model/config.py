"""The platform's configuration: clusters, groups with per-cluster quotas, and queues (pure data).

Quota semantics follow Kueue's nominal quota / borrowing / lending, per cluster and per resource
(the arithmetic lives in :class:`recforge.platform.scheduling.quota.QuotaBook`):

* every group that may use a cluster has a :class:`GroupQuota` there (``nominal`` may be zero);
  a group without one never runs on that cluster;
* ``guaranteed = nominal - lending_limit`` is kept for the group alone: nobody else may use it,
  even while it is idle (``lending_limit=None`` means all of ``nominal`` is lendable, so nothing
  is guaranteed: the group then competes for its own nominal quota with borrowers);
* the rest of every group's nominal quota (its lendable part) forms the cluster's shared pool; a
  group's usage above its own guaranteed part is drawn from that pool;
* a group never uses more than ``nominal + borrowing_limit`` (no cap when ``borrowing_limit`` is
  ``None``), never more than its cross-cluster ``total_cap`` summed over clusters, and the cluster's
  capacity is never exceeded.

Pods: a cluster's ``capacity.pods`` defaults to 110 per node (one node when none are listed); a
quota that does not mention ``pods`` gets the cluster's pods as its nominal amount (and, in a
lending or borrowing limit, the same amount: nothing guaranteed, nothing held back), so only an
admin who writes ``pods`` narrows them (:func:`quota_with_pod_defaults`).

:data:`CONFIG_KINDS` is the one list of configuration kinds (store keys, API paths, models).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recforge.platform.model.names import NAME_PATTERN
from recforge.platform.model.resources import DEFAULT_PODS_PER_NODE, Resources
from recforge.platform.model.specs import SpecError, format_validation_error, load_mapping

__all__ = [
    "CONFIG_KINDS",
    "OS_USER_PATTERN",
    "Cluster",
    "ClusterType",
    "ConfigKind",
    "Group",
    "GroupQuota",
    "PlatformConfig",
    "Queue",
    "config_kind",
    "parse_platform_config",
    "quota_with_pod_defaults",
]

ClusterType = Literal["local", "ray", "kubernetes", "spark"]
#: a POSIX user name (useradd's rule).
OS_USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cluster(_Strict):
    """A cluster of one type with a total capacity and, optionally, its nodes.

    ``nodes`` (per-node capacities) are for the backend's level-2 placement; level 1 only uses
    them to reject a replica that fits on no node, or a gang that cannot be packed even into an
    empty cluster.
    """

    name: str = Field(pattern=NAME_PATTERN)
    type: ClusterType
    capacity: Resources
    nodes: list[Resources] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        # Pods are always bounded: what a node or a cluster does not state gets the default.
        nodes = [_with_pods(n, DEFAULT_PODS_PER_NODE) for n in self.nodes]
        object.__setattr__(self, "nodes", nodes)
        default = sum(n.pods for n in nodes) if nodes else DEFAULT_PODS_PER_NODE
        object.__setattr__(self, "capacity", _with_pods(self.capacity, default))
        if self.nodes:
            total = Resources.total(self.nodes)
            if not self.capacity.fits(total):
                raise ValueError(f"capacity: {self.capacity} exceeds the sum of its nodes {total}")
        return self


class GroupQuota(_Strict):
    """A group's quota on one cluster (Kueue-style nominal / borrowing / lending limits)."""

    cluster: str
    nominal: Resources = Field(default_factory=lambda: Resources())
    borrowing_limit: Resources | None = Field(
        default=None, description="max usage above nominal; None = no limit (bounded by the pool)"
    )
    lending_limit: Resources | None = Field(
        default=None, description="max part of nominal others may borrow; None = all of it"
    )

    @model_validator(mode="after")
    def _check(self) -> GroupQuota:
        if self.lending_limit is not None and not self.lending_limit.fits(self.nominal):
            raise ValueError(f"lending_limit: {self.lending_limit} exceeds nominal {self.nominal}")
        return self

    @property
    def guaranteed(self) -> Resources:
        """The part of ``nominal`` nobody else may borrow."""
        if self.lending_limit is None:
            return Resources()
        return self.nominal.sub(self.lending_limit)


class Group(_Strict):
    """A user group with per-cluster quotas and an optional cap summed over all clusters.

    ``run_as`` is the unprivileged OS user its replicas run as when the service runs as root
    (default: the deployment's ``jobs.default_user``); jobs never run as root.
    """

    name: str = Field(pattern=NAME_PATTERN)
    quotas: list[GroupQuota] = Field(default_factory=list)
    total_cap: Resources | None = None
    run_as: str | None = Field(default=None, pattern=OS_USER_PATTERN)

    @field_validator("quotas")
    @classmethod
    def _unique(cls, v: list[GroupQuota]) -> list[GroupQuota]:
        seen = [q.cluster for q in v]
        dup = sorted({c for c in seen if seen.count(c) > 1})
        if dup:
            raise ValueError(f"more than one quota for cluster(s) {dup}")
        return v

    def quota(self, cluster: str) -> GroupQuota | None:
        return next((q for q in self.quotas if q.cluster == cluster), None)


class Queue(_Strict):
    """A queue feeding one group: ``priority`` is strict, ``weight`` scales its fair share.

    ``max_wait_seconds`` (the waiting bound: a job waiting this long starts starving and holds a
    reservation) and ``aging_seconds`` (waiting this long lowers a job's effective size by a
    whole-capacity share) override the scheduler's defaults for this queue.
    """

    name: str = Field(pattern=NAME_PATTERN)
    group: str
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    priority: int = 0
    max_wait_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    aging_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class PlatformConfig(_Strict):
    """Clusters, groups and queues, cross-checked (every reference resolves)."""

    clusters: list[Cluster]
    groups: list[Group]
    queues: list[Queue]

    @model_validator(mode="after")
    def _check(self) -> PlatformConfig:
        for kind, names in (
            ("clusters", [c.name for c in self.clusters]),
            ("groups", [g.name for g in self.groups]),
            ("queues", [q.name for q in self.queues]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind}: duplicate name(s) {dup}")
        clusters = {c.name for c in self.clusters}
        groups = {g.name for g in self.groups}
        for g in self.groups:
            for q in g.quotas:
                if q.cluster not in clusters:
                    raise ValueError(
                        f"groups: group {g.name!r} has a quota for unknown cluster {q.cluster!r}"
                    )
        for queue in self.queues:
            if queue.group not in groups:
                raise ValueError(
                    f"queues: queue {queue.name!r} names unknown group {queue.group!r}"
                )
        for c in self.clusters:
            guaranteed = Resources.total(
                [
                    quota_with_pod_defaults(gq, c).guaranteed
                    for g in self.groups
                    if (gq := g.quota(c.name)) is not None
                ]
            )
            short = guaranteed.shortfall(c.capacity)
            if short:
                detail = ", ".join(f"{k}: {n:g} > {a:g}" for k, (n, a) in short.items())
                raise ValueError(
                    f"groups: guaranteed quotas on cluster {c.name!r} exceed its capacity "
                    f"({detail})"
                )
        return self


def _with_pods(r: Resources, pods: int) -> Resources:
    """``r`` with ``pods`` filled in when it was not given (an explicit 0 stays 0)."""
    if "pods" in r.model_fields_set:
        return r
    return r.model_copy(update={"pods": pods})


def quota_with_pod_defaults(quota: GroupQuota, cluster: Cluster) -> GroupQuota:
    """``quota`` with the pods it does not mention set to the cluster's pods capacity.

    So an admin who never writes ``pods`` gets the cluster's process bound and nothing else;
    one who does narrows a group's pods like any other resource.
    """
    pods = cluster.capacity.pods
    update: dict[str, Resources] = {"nominal": _with_pods(quota.nominal, pods)}
    if quota.lending_limit is not None:
        update["lending_limit"] = _with_pods(quota.lending_limit, update["nominal"].pods)
    if quota.borrowing_limit is not None:
        update["borrowing_limit"] = _with_pods(quota.borrowing_limit, pods)
    return quota.model_copy(update=update)


@dataclass(frozen=True)
class ConfigKind:
    """One kind of configuration: its store key, its API path / config-file section, its model."""

    name: str  # "cluster": the store's key
    plural: str  # "clusters": the PlatformConfig field, the config-file section and the API path
    model: type[Cluster] | type[Group] | type[Queue]


#: the one list of configuration kinds, in dependency order (queues name groups name clusters).
CONFIG_KINDS: tuple[ConfigKind, ...] = (
    ConfigKind("cluster", "clusters", Cluster),
    ConfigKind("group", "groups", Group),
    ConfigKind("queue", "queues", Queue),
)


def config_kind(name: str) -> ConfigKind:
    """The kind named ``name`` (singular or plural); ``ValueError`` listing the known ones."""
    for kind in CONFIG_KINDS:
        if name in (kind.name, kind.plural):
            return kind
    known = ", ".join(k.plural for k in CONFIG_KINDS)
    raise ValueError(f"unknown configuration kind {name!r}; known: {known}")


def parse_platform_config(
    data: Mapping[str, Any] | str | bytes, source: str = "<platform>"
) -> PlatformConfig:
    """Validate a platform config (YAML/JSON text or dict); raises :class:`SpecError`."""
    mapping = load_mapping(data, "platform config", source)
    try:
        return PlatformConfig.model_validate(mapping)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "platform config", source)) from None


