"""The environment a replica gets: built from an allow-list, never copied from the service.

A replica sees exactly: ``PATH`` (the service's), ``LANG`` (``C.UTF-8`` unless passed), ``HOME``,
``USER``/``LOGNAME`` (its OS user, ``HOME`` its scratch directory), the service's numerical-kernel
settings (:data:`KERNEL_ENV`, those set), the variables the deployment
lists in ``jobs.pass_env`` (taken from the service's environment when it starts; the platform's
own secrets are refused there), the spec's ``env``, ``OMP_NUM_THREADS`` from its cpu request
unless set, and the documented identity variables ``RECFORGE_JOB_ID``, ``RECFORGE_JOB_NAME``,
``RECFORGE_ATTEMPT``, ``RECFORGE_REPLICA_INDEX``, ``RECFORGE_ROLE``, ``RECFORGE_ROLE_INDEX`` and
``RECFORGE_WORLD_SIZE``, which nothing overrides.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from recforge.platform.model.deployment import PROTECTED_ENV
from recforge.platform.model.specs import JobSpec

__all__ = ["KERNEL_ENV", "EnvPolicy", "identity_env"]

_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# Variables that choose BLAS/SIMD kernels and so the last bits of floating-point results (a job
# without the service's OPENBLAS_CORETYPE=Haswell ran OpenBLAS's Zen kernels and its NDCG
# differed from the same run in the service's shell by an ulp). They hold no secrets, so a job
# gets the machine's settings and computes what a local run on that machine computes.
KERNEL_ENV = (
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE",
    "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "NPY_DISABLE_CPU_FEATURES",
    "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES",
)


def _kernel_env() -> dict[str, str]:
    return {n: v for n in KERNEL_ENV if (v := os.environ.get(n)) is not None}


def identity_env(
    job_id: int, attempt: int, name: str, index: int, role: str, role_index: int, world_size: int
) -> dict[str, str]:
    """The ``RECFORGE_*`` identity variables of one replica."""
    return {
        "RECFORGE_JOB_ID": str(job_id),
        "RECFORGE_JOB_NAME": name,
        "RECFORGE_ATTEMPT": str(attempt),
        "RECFORGE_REPLICA_INDEX": str(index),
        "RECFORGE_ROLE": role,
        "RECFORGE_ROLE_INDEX": str(role_index),
        "RECFORGE_WORLD_SIZE": str(world_size),
    }


@dataclass(frozen=True)
class EnvPolicy:
    """What replicas get from the service: ``PATH``, its kernel settings and ``passed`` values.

    ``kernel`` defaults to this process's :data:`KERNEL_ENV` values when the policy is made."""

    path: str = _DEFAULT_PATH
    passed: Mapping[str, str] = field(default_factory=dict)
    kernel: Mapping[str, str] = field(default_factory=_kernel_env)

    @classmethod
    def from_service(cls, pass_env: Sequence[str] = ()) -> EnvPolicy:
        """Read ``PATH`` and the ``pass_env`` names (those set) from this process's environment."""
        protected = sorted(set(pass_env) & PROTECTED_ENV)
        if protected:
            raise ValueError(f"{protected} are the platform's secrets and never reach a job")
        passed = {n: v for n in pass_env if (v := os.environ.get(n)) is not None}
        return cls(os.environ.get("PATH", _DEFAULT_PATH), passed)

    def build(
        self,
        spec: JobSpec,
        identity: Mapping[str, str],
        *,
        cpu: float,
        home: str | None,
        user: str | None,
    ) -> dict[str, str]:
        """The whole environment of one replica (see the module docstring)."""
        env = {"PATH": self.path, "LANG": "C.UTF-8"}
        if home:
            env["HOME"] = home
        if user:
            env["USER"] = env["LOGNAME"] = user
        env.update(self.kernel)
        env.update(self.passed)
        env.update(spec.env)
        if cpu > 0:
            env.setdefault("OMP_NUM_THREADS", str(max(1, math.ceil(cpu - 1e-9))))
        env.update(identity)
        return env
