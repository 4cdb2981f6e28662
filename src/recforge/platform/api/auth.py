"""Bearer-token authentication.

``Authorization: Bearer <token>``. Tokens belong to users; a user belongs to one group; the store
keeps only the sha256 of each token, with a public id and an expiry. ``RECFORGE_ADMIN_TOKEN``
(or ``admin_token=``) is an extra bootstrap token that authenticates as the built-in admin; it
is compared in memory and never stored. Who may do what: :mod:`recforge.platform.model.access`.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recforge.platform.api.errors import ApiError
from recforge.platform.model.access import ADMIN_GROUP, ADMIN_USER
from recforge.platform.store import Store, User, hash_token

__all__ = ["AdminDep", "Authenticator", "TokenAuth", "UserDep", "admin_user", "current_user"]


class TokenAuth:
    """Resolves bearer tokens to users: the bootstrap admin token, then the store's tokens.

    Successful store look-ups are cached for ``cache_seconds`` (keyed by the token's digest, and
    never past the token's expiry) to save a database read per request; :meth:`forget` drops
    the cache at once (the service calls it when a token is revoked). ``cache_seconds=0``
    disables the cache.
    """

    def __init__(
        self,
        store: Store,
        *,
        admin_token: str | None = None,
        cache_seconds: float = 5.0,
        max_cached: int = 10_000,
    ) -> None:
        self.store = store
        # Keep only the digest: compare digests in constant time, never the raw secret.
        self._admin_digest = hash_token(admin_token) if admin_token else None
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._cache: dict[str, tuple[User, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, token: str) -> User | None:
        digest = hash_token(token)
        if self._admin_digest is not None and hmac.compare_digest(digest, self._admin_digest):
            return User(ADMIN_USER, ADMIN_GROUP, True)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = self.store.authenticate_token(token)
        if found is None:
            return None
        user, info = found
        if self.cache_seconds > 0:
            until = now + self.cache_seconds
            if info.expires_at is not None:
                until = min(until, now + (info.expires_at - self.store.clock()))
            with self._lock:
                if len(self._cache) >= self.max_cached:
                    self._cache.clear()  # crude bound; a miss only costs one read
                self._cache[digest] = (user, until)
        return user

    def forget(self) -> None:
        """Drop every cached look-up (after a revocation)."""
        with self._lock:
            self._cache.clear()


Authenticator = Callable[[str], User | None]
_bearer = HTTPBearer(auto_error=False, description="a platform token: Bearer <token>")


async def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The authenticated caller (401 without a known, unexpired bearer token).

    Runs on the event loop (a plain function dependency would cost every request a hop to the
    thread pool): a cached token costs no I/O, a miss one indexed read."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
    user = request.app.state.auth(creds.credentials)
    if user is None:
        raise ApiError(401, "unknown, revoked or expired token")
    request.state.user = user  # for the access log
    return user  # type: ignore[no-any-return]


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The caller, who must be an admin (403 otherwise)."""
    if not user.is_admin:
        raise ApiError(403, f"user {user.name!r} is not an admin; this needs an admin token")
    return user


UserDep = Annotated[User, Depends(current_user)]
AdminDep = Annotated[User, Depends(admin_user)]
