"""Redis clients: asyncio for the API, synchronous for RQ (which needs bytes, not str)."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from service.settings import Settings

QUEUE_NAME = "memstack:ingest"


# Each open SSE stream holds a connection while it waits for events; beyond this many,
# requests wait for a free connection (up to the timeout) instead of failing at once.
ASYNC_MAX_CONNECTIONS = 1000


def create_async_redis(settings: Settings) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool(
        connection_class=aioredis.SSLConnection if settings.redis_tls else aioredis.Connection,
        max_connections=ASYNC_MAX_CONNECTIONS,
        timeout=5,
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password or None,
        socket_connect_timeout=3,
        socket_timeout=30,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


def create_sync_redis(settings: Settings) -> redis.Redis:
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password or None,
        ssl=settings.redis_tls,
        socket_connect_timeout=3,
        socket_timeout=30,
        health_check_interval=30,
    )
