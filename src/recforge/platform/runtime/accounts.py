"""Issuing tokens and creating users: shared by the service and the CLI's bootstrap path
(``recforge platform token create --store``), which works before any server runs."""

from __future__ import annotations

from recforge.platform.model.access import ADMIN_GROUP, ADMIN_USER
from recforge.platform.model.names import check_name
from recforge.platform.runtime.errors import Conflict, Invalid
from recforge.platform.store import DEFAULT_TOKEN_TTL, Store, TokenInfo, User

__all__ = ["MAX_TOKEN_TTL", "issue_token"]

#: no token lives longer than a year.
MAX_TOKEN_TTL = 365 * 24 * 3600.0


def issue_token(
    store: Store,
    user: str,
    *,
    group: str | None,
    admin: bool = False,
    label: str = "",
    ttl_seconds: float = DEFAULT_TOKEN_TTL,
    known_groups: set[str] | None = None,
) -> tuple[User, str, TokenInfo]:
    """Create ``user`` in ``group`` if new, then issue a token expiring after ``ttl_seconds``.

    ``known_groups`` (when given) are the groups a new non-admin user may join. Raises
    :class:`Invalid` (bad names, unknown group, reserved user, bad lifetime) or
    :class:`Conflict` (the user exists in another group, or is not an admin).
    """
    try:
        check_name(user, "user name")
        if group is not None:
            check_name(group, "group name")
    except ValueError as exc:
        raise Invalid(str(exc), field="user" if "user" in str(exc) else "group") from None
    if not 0 < ttl_seconds <= MAX_TOKEN_TTL:
        raise Invalid(
            f"token lifetime must be in (0, {MAX_TOKEN_TTL:g}] seconds, got {ttl_seconds:g}",
            field="ttl_seconds",
        )
    if user == ADMIN_USER and (group not in (None, ADMIN_GROUP) or not admin):
        raise Invalid(
            f"user name {ADMIN_USER!r} is reserved for an admin in group {ADMIN_GROUP!r} "
            "(the identity of the bootstrap token)",
            field="user",
        )
    existing = store.get_user(user)
    if existing is None:
        if not group:
            raise Invalid(f"user {user!r} does not exist: give a group to create it",
                          field="group")  # fmt: skip
        if known_groups is not None and group not in known_groups and not (
            admin and group == ADMIN_GROUP
        ):
            raise Invalid(
                f"unknown group {group!r}; known groups: {sorted(known_groups)}"
                + (f" (or {ADMIN_GROUP!r} for an admin)" if not admin else ""),
                field="group",
            )
        try:
            existing = store.add_user(user, group, is_admin=admin)
        except ValueError as exc:  # created concurrently
            raise Conflict(str(exc), field="user") from None
    elif group is not None and group != existing.group:
        raise Conflict(f"user {user!r} is in group {existing.group!r}, not {group!r}",
                       field="group")  # fmt: skip
    elif admin and not existing.is_admin:
        raise Conflict(f"user {user!r} exists and is not an admin", field="admin")
    token, info = store.issue_token_info(user, label=label, ttl_seconds=ttl_seconds)
    return existing, token, info
