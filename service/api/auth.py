"""Bearer-key authentication as a dependency: every /api route receives the caller's Principal."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from psycopg_pool import AsyncConnectionPool

from service.api.auth_throttle import AuthThrottle
from service.auth.cache import KeyCache
from service.auth.keys import Principal, bearer_token, hash_key
from service.stores import tenancy

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="memstack"'}


@dataclass(frozen=True, slots=True)
class AuthDeps:
    """What resolving a key needs: PostgreSQL, the process's key cache and unknown-key throttle."""

    pool: AsyncConnectionPool
    key_cache: KeyCache
    throttle: AuthThrottle
    bootstrap_key: str


async def provide_principal(request: Request[Any, Any, Any], auth: NamedDependency[AuthDeps]) -> Principal:
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'", headers=_CHALLENGE)
    key_hash = hash_key(token)
    principal = auth.key_cache.get(key_hash)
    if principal is not None:
        return principal
    # A key this process has not resolved yet: throttled per address before PostgreSQL sees it.
    wait = await auth.throttle.retry_after(request.scope)
    if wait:
        raise TooManyRequestsException(
            f"Too many unknown API keys from this address; retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )
    async with auth.pool.connection() as conn:
        principal = await tenancy.principal_for_key(conn, token)
        bootstrap = auth.bootstrap_key
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        if principal is None and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
            await tenancy.ensure_bootstrap_key(conn, bootstrap)
            principal = await tenancy.principal_for_key(conn, token)
    if principal is None:
        await auth.throttle.failed(request.scope)
        raise NotAuthorizedException("Unknown or revoked API key", headers=_CHALLENGE)
    auth.key_cache.put(key_hash, principal)
    return principal


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDeniedException("This needs an API key with the admin scope")
