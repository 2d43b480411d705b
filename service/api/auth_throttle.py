"""Unknown API keys are throttled per client address, before any database work.

The per-key rate limit counts a request under its key, so a flood of random keys gets a
fresh budget with every request, and each one would cost a PostgreSQL lookup. This throttle
counts failed lookups per client address instead (the address as the rate limiter sees it,
`TRUSTED_PROXIES` included): after `AUTH_FAILURES_PER_MINUTE` unknown keys in a sliding
minute, further keys this process has not already resolved get a 429 with Retry-After and
never reach PostgreSQL. Keys that resolve are not counted, and keys in the process's key
cache are not even checked. `RATE_LIMIT_PER_MINUTE=0` turns this throttle off as well.

Like the rate limiter it fails open: if Redis is unreachable or slow, lookups go ahead.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis

from service.api.ratelimit import REDIS_BUDGET_SECONDS, FailOpen, client_ip, parse_trusted_proxies
from service.asgi import Scope
from service.settings import Settings
from service.stores.ratelimit import RateDecision, RateLimiter, create_limiter_redis

AUTH_FAILURES_PER_MINUTE = 30
KEY_PREFIX = "memstack:authfail:"


class AuthThrottle:
    def __init__(self, settings: Settings) -> None:
        enabled = settings.rate_limit_per_minute > 0
        self._limiter = RateLimiter(AUTH_FAILURES_PER_MINUTE, prefix=KEY_PREFIX) if enabled else None
        self._trusted = parse_trusted_proxies(settings.trusted_proxies)
        self._settings = settings
        self._client: aioredis.Redis | None = None
        self._fail_open = FailOpen("auth throttle", "not throttling unknown keys")

    async def retry_after(self, scope: Any) -> int:
        """Seconds before this client's next unknown key may be looked up; 0 means go ahead."""
        decision = await self._ask(scope, peek=True)
        return 0 if decision is None or decision.allowed else decision.retry_after_seconds

    async def failed(self, scope: Any) -> None:
        """Count one unknown key against the client's address."""
        await self._ask(scope, peek=False)

    def identity(self, scope: Any) -> str:
        return "ip:" + client_ip(cast(Scope, scope), self._trusted)

    async def _ask(self, scope: Any, *, peek: bool) -> RateDecision | None:
        if self._limiter is None or self._fail_open.skipping:
            return None
        if self._client is None:  # created on first use, inside the server's event loop
            self._client = create_limiter_redis(self._settings, timeout=REDIS_BUDGET_SECONDS)
        return await self._fail_open.hit(self._limiter, self._client, self.identity(scope), peek=peek)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
