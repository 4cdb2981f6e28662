"""Which OS user a replica runs as.

When the service runs as root, replicas run as an unprivileged user: the group's ``run_as``, else
the deployment's ``jobs.default_user`` (``nobody`` unless configured); root is never used. When
the service is not root it cannot switch users, so replicas run as the service's user and the
configuration may not name other users (:func:`check_users` says so at start).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RunAs", "UserPolicy", "check_users", "lookup"]


@dataclass(frozen=True)
class RunAs:
    """An OS account: name, uid, primary gid and home directory."""

    user: str
    uid: int
    gid: int
    home: str


def lookup(user: str) -> RunAs:
    """The account named ``user``; ``ValueError`` naming it if there is none or it is root."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"OS user {user!r} does not exist on this machine") from None
    if pw.pw_uid == 0:
        raise ValueError(f"OS user {user!r} is root: jobs never run as root")
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


@dataclass(frozen=True)
class UserPolicy:
    """Resolves a group's replica user (see the module docstring)."""

    default_user: str = "nobody"
    switch: bool = os.geteuid() == 0  # only root can run processes as another user

    def run_as(self, run_as: str | None) -> RunAs | None:
        """The account for a group whose ``run_as`` is given; None: the service's own user."""
        if not self.switch:
            return None
        return lookup(run_as or self.default_user)


def check_users(policy: UserPolicy, names: Iterable[str | None]) -> None:
    """Refuse, naming the user, a configuration the service cannot honour: unknown or root
    accounts, or any account at all when the service is not root."""
    wanted = sorted({n for n in names if n})
    if not policy.switch:
        if wanted:
            raise ValueError(
                f"groups name run_as users {wanted} but the service is not root and cannot "
                "run processes as another user"
            )
        return
    for name in [*wanted, policy.default_user]:
        lookup(name)
