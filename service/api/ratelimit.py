"""Per-API-key rate limit: `RATE_LIMIT_PER_MINUTE` requests per client, shared by every process.

Who is a client:
- a request with `Authorization: Bearer <token>` is counted under sha256(token) (the raw key
  never reaches Redis, a log or a metric); whether the key is valid is auth's business;
- any other request is counted under the client's IP address. The IP is the TCP peer, unless
  the peer is one of `TRUSTED_PROXIES` (addresses or CIDRs): then it is the right-most
  `X-Forwarded-For` entry that is not itself a trusted proxy (left-most entries are whatever
  the client chose to send and are never believed).

Exempt: `/health`, `/ready`, `/metrics`, `/schema*`, CORS preflights, and any route handler
declared with `opt={"rate_limit": False}` (the SSE stream: an open stream is one request
and is never cut by the limiter). `RATE_LIMIT_PER_MINUTE=0` turns the limiter off.

Every counted response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
and `RateLimit-Policy`; a throttled one is a 429 problem+json with `Retry-After`.

If Redis is unreachable or slow (over half a second) the request is let through (fail open) and a warning is
logged: availability beats strictness for a limiter whose job is fairness, not security.
While Redis is failing, the limiter stops asking it for a few seconds, so requests do not
each pay a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from litestar.middleware import DefineMiddleware
from loguru import logger
from redis.exceptions import RedisError

from service.api.errors import PROBLEM_MEDIA_TYPE, Problem
from service.asgi import ASGIApp, Message, Receive, Scope, Send
from service.auth.keys import bearer_token, hash_key
from service.settings import Settings
from service.stores.ratelimit import WINDOW_SECONDS, RateDecision, RateLimiter, create_limiter_redis

RedisGetter = Callable[[Scope], "aioredis.Redis | None"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics", "/schema"})
EXEMPT_PREFIXES = ("/schema/",)
REDIS_BUDGET_SECONDS = 0.5  # a limiter slower than this costs more than it protects
BACKOFF_SECONDS = 5.0  # after a Redis failure, skip the limiter this long
_STATUS = HTTPStatus.TOO_MANY_REQUESTS


def parse_trusted_proxies(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _is_trusted(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _header(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name]


def client_ip(scope: Scope, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address, believing X-Forwarded-For only as far as trusted proxies vouch."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in _header(scope, b"x-forwarded-for") for hop in value.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def client_identity(scope: Scope, trusted: tuple[IPNetwork, ...]) -> str:
    """`key:<sha256 of the bearer token>`, or `ip:<address>` for requests without one."""
    for value in _header(scope, b"authorization"):
        token = bearer_token(value)
        if token is not None:
            return "key:" + hash_key(token).hex()
    return "ip:" + client_ip(scope, trusted)


def rate_limit_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(decision.retry_after_seconds or decision.reset_seconds).encode()),
        (b"ratelimit-policy", f"{decision.limit};w={WINDOW_SECONDS}".encode()),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(decision.retry_after_seconds).encode()))
    return headers


class FailOpen:
    """One limiter hit within REDIS_BUDGET_SECONDS that fails open: on a Redis error or timeout
    it answers None, says so once, and leaves Redis alone for BACKOFF_SECONDS."""

    def __init__(self, name: str, meanwhile: str) -> None:
        self._name = name
        self._meanwhile = meanwhile  # what happens while Redis is skipped, for the log line
        self._skip_until = 0.0

    @property
    def skipping(self) -> bool:
        return time.monotonic() < self._skip_until

    async def hit(
        self, limiter: RateLimiter, client: aioredis.Redis, identity: str, *, peek: bool = False
    ) -> RateDecision | None:
        try:
            async with asyncio.timeout(REDIS_BUDGET_SECONDS):
                return await limiter.hit(client, identity, peek=peek)
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = time.monotonic() + BACKOFF_SECONDS
            logger.warning(
                "{name}: Redis unavailable ({error}); {meanwhile} for {seconds}s",
                name=self._name,
                error=type(exc).__name__,
                meanwhile=self._meanwhile,
                seconds=BACKOFF_SECONDS,
            )
            return None


class RateLimitMiddleware:
    """Pure ASGI middleware; usable inside Litestar (see `rate_limit_middleware`) or around any app."""

    def __init__(self, app: ASGIApp, settings: Settings, redis_getter: RedisGetter | None = None) -> None:
        self.app = app
        self.trusted = parse_trusted_proxies(settings.trusted_proxies)
        self.limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
        self.redis_getter = redis_getter or self._own_client
        self._client: aioredis.Redis | None = None
        self._settings = settings
        self._fail_open = FailOpen("rate limiter", "letting requests through")

    def _own_client(self, scope: Scope) -> aioredis.Redis:
        # Created on first use, inside the server's event loop; one small pool per process.
        if self._client is None:
            self._client = create_limiter_redis(self._settings, timeout=REDIS_BUDGET_SECONDS)
        return self._client

    def exempt(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            return True
        path: str = scope.get("path", "")
        if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return True
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", None) or {}
        return opt.get("rate_limit", True) is False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limiter is None or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        decision = await self._decide(scope, self.limiter)
        if decision is None:
            await self.app(scope, receive, send)
        elif not decision.allowed:
            await self._reject(scope, send, decision)
        else:
            extra = rate_limit_headers(decision)

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
                await send(message)

            await self.app(scope, receive, send_with_headers)

    async def _decide(self, scope: Scope, limiter: RateLimiter) -> RateDecision | None:
        if self._fail_open.skipping:
            return None
        client = self.redis_getter(scope)
        if client is None:
            return None
        return await self._fail_open.hit(limiter, client, client_identity(scope, self.trusted))

    @staticmethod
    async def _reject(scope: Scope, send: Send, decision: RateDecision) -> None:
        seconds = decision.retry_after_seconds
        body = msgspec.json.encode(
            Problem(
                title=_STATUS.phrase,
                status=_STATUS.value,
                detail=f"Rate limit of {decision.limit} requests per minute exceeded; retry in {seconds}s.",
                instance=scope.get("path"),
            )
        )
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *rate_limit_headers(decision),
        ]
        await send({"type": "http.response.start", "status": _STATUS.value, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def rate_limit_middleware(settings: Settings, redis_getter: RedisGetter | None = None) -> DefineMiddleware:
    """The middleware for `Litestar(middleware=[...])`.

    By default the limiter talks to Redis through a small blocking pool of its own (see
    `create_limiter_redis`), not the shared client: a shared pool exhausted by SSE streams
    or a burst would otherwise switch the limiter off exactly when it matters.
    """
    factory = cast("Callable[..., Any]", RateLimitMiddleware)  # Litestar's Scope types are TypedDicts
    return DefineMiddleware(factory, settings=settings, redis_getter=redis_getter)
