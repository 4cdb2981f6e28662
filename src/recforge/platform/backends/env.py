"""The environment a replica gets: built from an allow-list, never copied from the service.

A replica sees exactly: ``PATH`` (the service's), ``LANG`` (``C.UTF-8`` unless passed), ``HOME``,
``USER``/``LOGNAME`` (its OS user, ``HOME`` its scratch directory), the variables the deployment
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

__all__ = ["EnvPolicy", "identity_env"]

_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


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
    """What replicas get from the service: ``PATH`` and the allow-listed ``passed`` values."""

    path: str = _DEFAULT_PATH
    passed: Mapping[str, str] = field(default_factory=dict)

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
        env.update(self.passed)
        env.update(spec.env)
        if cpu > 0:
            env.setdefault("OMP_NUM_THREADS", str(max(1, math.ceil(cpu - 1e-9))))
        env.update(identity)
        return env
