"""Users, bearer tokens (only their sha256 is stored; each has a public id and an expiry) and the
audit log of admin actions."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from recforge.platform.store.engine import StoreBase
from recforge.platform.store.records import AuditEntry, TokenInfo, User, hash_token, parse_cursor
from recforge.platform.store.tables import audit_t, tokens_t, users_t

__all__ = ["DEFAULT_TOKEN_TTL", "IdentityStore"]

#: tokens expire after 30 days unless issued with another lifetime.
DEFAULT_TOKEN_TTL = 30 * 24 * 3600.0


def _token_info(row: Any) -> TokenInfo:
    return TokenInfo(row.token_id, row.user_name, row.label, row.created_at, row.expires_at)


class IdentityStore(StoreBase):
    """Users, tokens and the audit log (see the module docstring)."""

    # -- users ----------------------------------------------------------------------------------
    def add_user(self, name: str, group: str, *, is_admin: bool = False) -> User:
        """Create a user (error if the name exists)."""
        if not name or not group:
            raise ValueError("add_user needs a non-empty user name and group")
        with self._write() as conn:
            if conn.execute(sa.select(users_t.c.name).where(users_t.c.name == name)).first():
                raise ValueError(f"user {name!r} already exists")
            conn.execute(
                users_t.insert().values(
                    name=name, group_name=group, is_admin=is_admin, created_at=self.clock()
                )
            )
        return User(name, group, is_admin)

    def get_user(self, name: str) -> User | None:
        """The user or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(users_t).where(users_t.c.name == name)).first()
        return None if row is None else User(row.name, row.group_name, bool(row.is_admin))

    # -- tokens ---------------------------------------------------------------------------------
    def issue_token(
        self, user: str, *, label: str = "", ttl_seconds: float | None = DEFAULT_TOKEN_TTL
    ) -> str:
        """Create a bearer token for ``user``; the plaintext is returned once, the hash kept.

        The token expires ``ttl_seconds`` from now (``None``: never, for service accounts an
        admin manages by hand).
        """
        return self.issue_token_info(user, label=label, ttl_seconds=ttl_seconds)[0]

    def issue_token_info(
        self, user: str, *, label: str = "", ttl_seconds: float | None = DEFAULT_TOKEN_TTL
    ) -> tuple[str, TokenInfo]:
        """:meth:`issue_token` plus the stored record (public id, expiry)."""
        if ttl_seconds is not None and not ttl_seconds > 0:
            raise ValueError(f"token lifetime must be > 0 seconds, got {ttl_seconds!r}")
        if self.get_user(user) is None:
            raise ValueError(f"cannot issue a token: unknown user {user!r}")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        info = TokenInfo(
            token_id="tok-" + secrets.token_hex(8),
            user=user,
            label=label,
            created_at=now,
            expires_at=None if ttl_seconds is None else now + ttl_seconds,
        )
        with self._write() as conn:
            conn.execute(
                tokens_t.insert().values(
                    token_hash=hash_token(token),
                    user_name=user,
                    label=label,
                    created_at=now,
                    token_id=info.token_id,
                    expires_at=info.expires_at,
                )
            )
        return token, info

    def authenticate_token(self, token: str) -> tuple[User, TokenInfo] | None:
        """The user owning ``token`` and the token's record; None if unknown, revoked or
        expired."""
        now = self.clock()
        with self._read() as conn:
            row = conn.execute(
                sa.select(users_t, tokens_t)
                .join(tokens_t, tokens_t.c.user_name == users_t.c.name)
                .where(tokens_t.c.token_hash == hash_token(token))
            ).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return User(row.name, row.group_name, bool(row.is_admin)), _token_info(row)

    def authenticate(self, token: str) -> User | None:
        """The user owning ``token``, or None for an unknown, revoked or expired token."""
        found = self.authenticate_token(token)
        return None if found is None else found[0]

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        """Stored tokens (never their secrets), oldest first, optionally of one user."""
        stmt = sa.select(tokens_t).order_by(tokens_t.c.created_at, tokens_t.c.token_id)
        if user is not None:
            stmt = stmt.where(tokens_t.c.user_name == user)
        with self._read() as conn:
            return [_token_info(r) for r in conn.execute(stmt).all()]

    def get_token(self, token_id: str) -> TokenInfo | None:
        """The token with public id ``token_id``, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(tokens_t).where(tokens_t.c.token_id == token_id)).first()
        return None if row is None else _token_info(row)

    def revoke_token(self, token_id: str) -> bool:
        """Delete the token with public id ``token_id``; False if unknown."""
        with self._write() as conn:
            stmt = tokens_t.delete().where(tokens_t.c.token_id == token_id)
            return conn.execute(stmt).rowcount == 1

    def revoke_secret(self, token: str) -> bool:
        """Delete the token whose secret is ``token``; False if unknown."""
        with self._write() as conn:
            stmt = tokens_t.delete().where(tokens_t.c.token_hash == hash_token(token))
            return conn.execute(stmt).rowcount == 1

    # -- audit log ------------------------------------------------------------------------------
    def audit(
        self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None
    ) -> int:
        """Append one admin action; returns its id."""
        with self._write() as conn:
            return int(
                conn.execute(
                    audit_t.insert()
                    .values(at=self.clock(), actor=actor, action=action, target=target,
                            detail=detail)
                    .returning(audit_t.c.id)
                ).scalar_one()
            )  # fmt: skip

    def audit_log(
        self, *, limit: int = 100, cursor: str | None = None, action: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """One page of the audit log, newest first, and the cursor of the next page."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"audit_log limit must be in 1..1000, got {limit}")
        before = parse_cursor(cursor)
        stmt = sa.select(audit_t).order_by(audit_t.c.id.desc()).limit(limit + 1)
        if before is not None:
            stmt = stmt.where(audit_t.c.id < before)
        if action is not None:
            stmt = stmt.where(audit_t.c.action == action)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        items = [
            AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in rows[:limit]
        ]
        return items, (str(items[-1].id) if len(rows) > limit else None)
