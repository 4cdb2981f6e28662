"""Backends (one proxy per cluster type): local processes, Ray, Spark and Kubernetes.

Names load on first use, so running the sidecar (``python -m recforge.platform.backends.sidecar``)
imports nothing else, and the local backend never imports Ray. How to add a backend:
:mod:`recforge.platform.backends.base`.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Backend": "base",
    "BackendError": "base",
    "BackendStatus": "base",
    "LaunchError": "base",
    "ReplicaPhase": "base",
    "ReplicaStatus": "base",
    "EnvPolicy": "env",
    "KubernetesBackend": "kubernetes",
    "LocalBackend": "local",
    "RayBackend": "ray",
    "RunAs": "users",
    "SparkBackend": "spark",
    "UserPolicy": "users",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'recforge.platform.backends' has no attribute {name!r}")
    return getattr(importlib.import_module(f"recforge.platform.backends.{where}"), name)
