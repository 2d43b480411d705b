"""Bearer-key authentication as a dependency: every /api route receives the caller's Principal."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException

from service.auth.keys import Principal, hash_key
from service.lifespan import Resources
from service.stores import tenancy

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="memstack"'}


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def provide_principal(request: Request[Any, Any, Any], resources: Resources) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'", headers=_CHALLENGE)
    key_hash = hash_key(token)
    principal = resources.key_cache.get(key_hash)
    if principal is not None:
        return principal
    # A key this process has not resolved yet: throttled per address before PostgreSQL sees it.
    wait = await resources.auth_throttle.retry_after(request.scope)
    if wait:
        raise TooManyRequestsException(
            f"Too many unknown API keys from this address; retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )
    async with resources.pool.connection() as conn:
        principal = await tenancy.principal_for_key(conn, token)
        bootstrap = resources.settings.memstack_bootstrap_api_key
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        if principal is None and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
            await tenancy.ensure_bootstrap_key(conn, bootstrap)
            principal = await tenancy.principal_for_key(conn, token)
    if principal is None:
        await resources.auth_throttle.failed(request.scope)
        raise NotAuthorizedException("Unknown or revoked API key", headers=_CHALLENGE)
    resources.key_cache.put(key_hash, principal)
    return principal


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDeniedException("This needs an API key with the admin scope")
