"""Redis clients: asyncio for the API, synchronous for RQ (which needs bytes, not str)."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from service.settings import Settings

QUEUE_NAME = "memstack:ingest"


def create_async_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password or None,
        ssl=settings.redis_tls,
        socket_connect_timeout=3,
        socket_timeout=10,
        health_check_interval=30,
        decode_responses=False,
    )


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
