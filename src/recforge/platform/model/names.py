"""The one name rule for everything a platform user or admin names.

Jobs, clusters, groups, queues, users and templates share it: 1-63 characters (Kubernetes' label
limit, so a name can become a label or a Ray job id), letters, digits, ``.``, ``_`` and ``-``,
starting and ending with a letter or a digit. Pydantic fields use :data:`NAME_PATTERN`; code that
checks a name by hand calls :func:`check_name`, whose message names what was named.
"""

from __future__ import annotations

import re

__all__ = ["NAME_MAX", "NAME_PATTERN", "check_name", "is_name"]

NAME_MAX = 63
NAME_PATTERN = rf"^[A-Za-z0-9]([A-Za-z0-9._-]{{0,{NAME_MAX - 2}}}[A-Za-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
RULE = (
    f"1-{NAME_MAX} characters: letters, digits, '.', '_', '-', starting and ending with a letter "
    "or digit"
)


def is_name(value: object) -> bool:
    """Whether ``value`` is a string that follows the name rule."""
    return isinstance(value, str) and _NAME_RE.match(value) is not None


def check_name(value: str, what: str) -> str:
    """``value`` if it follows the rule, else ``ValueError`` naming ``what`` ("job name", ...)."""
    if not is_name(value):
        raise ValueError(f"invalid {what} {value!r}: {RULE}")
    return value
