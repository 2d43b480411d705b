"""Every Redis client of the service: asyncio for the API, synchronous for RQ (which needs bytes,
not str), the worker and the LLM cache. The rate limiter's small pool is one more asyncio client
(`service.stores.ratelimit.create_limiter_redis`) made by the same factory."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from service.settings import Settings

QUEUE_NAME = "memstack:ingest"


# Each open SSE stream holds a connection while it waits for events; beyond this many,
# requests wait for a free connection (up to the timeout) instead of failing at once.
ASYNC_MAX_CONNECTIONS = 1000


def server_options(settings: Settings) -> dict[str, Any]:
    """Where and how every Redis client of the service connects: address, database, AUTH and,
    with REDIS_TLS, verified TLS (certificate and host name, against the system CAs plus the
    bundle in REDIS_TLS_CA_FILE). Keyword arguments for `redis.Redis` or a connection pool."""
    options: dict[str, Any] = {
        "host": settings.redis_host,
        "port": settings.redis_port,
        "db": settings.redis_db,
        "password": settings.redis_password or None,
    }
    if settings.redis_tls:
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = True
        if settings.redis_tls_ca_file:
            options["ssl_ca_certs"] = settings.redis_tls_ca_file
    return options


def create_async_redis(
    settings: Settings,
    *,
    max_connections: int = ASYNC_MAX_CONNECTIONS,
    timeout: float = 5,
    socket_connect_timeout: float = 3,
    socket_timeout: float = 30,
    health_check_interval: int = 30,
) -> aioredis.Redis:
    """An asyncio client over a blocking pool: when every connection is busy a caller waits up to
    `timeout` for one instead of failing at once (redis-py's default pool raises "Too many
    connections")."""
    pool = aioredis.BlockingConnectionPool(
        connection_class=aioredis.SSLConnection if settings.redis_tls else aioredis.Connection,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=socket_connect_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=health_check_interval,
        # A pooled connection left over from before a Redis restart fails on first use; try a
        # fresh one (twice, briefly) instead of failing that request.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(RedisConnectionError,)),
        **server_options(settings),
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: closing the client closes its connections


def create_sync_redis(settings: Settings) -> redis.Redis:
    return redis.Redis(
        ssl=settings.redis_tls,
        socket_connect_timeout=3,
        socket_timeout=30,
        health_check_interval=30,
        **server_options(settings),
    )
