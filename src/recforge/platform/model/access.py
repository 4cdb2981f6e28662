"""Who may do what: the platform's access rules, stated once in :data:`RULES`.

The REST API publishes :data:`RULES` in its OpenAPI description and documents each status it
answers with; the service enforces the rules through the functions below; docs/PLATFORM.md quotes
them.
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "RULES",
    "may_cancel",
    "may_see_group",
    "may_see_template",
    "may_submit_to",
]

ADMIN_USER = "admin"
ADMIN_GROUP = "admin"
RULES = """\
* A user sees and lists only the jobs of their own group; another group's job is answered
  exactly like a missing one, so ids of other groups' jobs do not leak.
* A job may be cancelled (a service job also scaled) by the user who submitted it or by an
  admin; a group-mate may see it but not cancel it (the answer is "forbidden").
* A user submits only to queues of their own group.
* Templates owned by the user's group or by ``admin`` are visible and usable; others look missing.
* Reading clusters, groups (quotas) and queues is open to every user; changing them, changing
  templates, issuing tokens for others and reading the audit log is for admins only. Every user
  may list and revoke their own tokens.
* Admins see, submit anywhere and cancel every job.
* DAG runs, their artefacts and schedules follow the same rules as jobs: seen by the owner's
  group, cancelled or changed by their owner or an admin.
* The queue and quota overview shows a user their own group's queues (with pending job ids) and
  usage; every cluster's capacity and free amount is open to all, as clusters are. The web UI
  (``/ui/``) calls only this API with the user's token, so it shows exactly the same.
* A replica heartbeat (``POST /jobs/{id}/heartbeat``) takes no user token, only the token of
  that job attempt, which reaches its pods' sidecars alone (a Secret per attempt).
"""


class Principal(Protocol):
    """Who asks: a user name, the user's group, whether an admin."""

    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def is_admin(self) -> bool: ...


def may_see_group(user: Principal, group: str) -> bool:
    """Whether ``user`` may see jobs of ``group``."""
    return user.is_admin or user.group == group


def may_cancel(user: Principal, owner: str) -> bool:
    """Whether ``user`` may cancel a job submitted by ``owner``: the owner or an admin."""
    return user.is_admin or user.name == owner


def may_submit_to(user: Principal, queue_group: str) -> bool:
    """Whether ``user`` may submit to a queue of ``queue_group``."""
    return user.is_admin or user.group == queue_group


def may_see_template(user: Principal, owner: str) -> bool:
    """Whether ``user`` may see and use a template owned by group ``owner``."""
    return user.is_admin or owner in (user.group, ADMIN_GROUP)
