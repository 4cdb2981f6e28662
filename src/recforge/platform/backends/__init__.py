"""Backends (one proxy per cluster type): local processes and Ray.

:class:`~recforge.platform.backends.ray.RayBackend` is imported lazily so that using the local
backend never imports Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recforge.platform.backends.base import (
    Backend,
    BackendError,
    BackendStatus,
    LaunchError,
    ReplicaPhase,
    ReplicaStatus,
)
from recforge.platform.backends.local import LocalBackend

if TYPE_CHECKING:
    from recforge.platform.backends.ray import RayBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackendStatus",
    "LaunchError",
    "LocalBackend",
    "RayBackend",
    "ReplicaPhase",
    "ReplicaStatus",
]


def __getattr__(name: str) -> Any:
    if name == "RayBackend":
        from recforge.platform.backends.ray import RayBackend

        return RayBackend
    raise AttributeError(name)
