"""Deleting an episode (and what only it supported) and erasing a whole project everywhere.

The PostgreSQL rows go first and commit last (see `service.stores.erasure`), so a crash
midway leaves the rows in place and the same request can simply be repeated; the graph,
stream, cache and queue steps are idempotent. An episode a worker is processing is `Busy`;
a Neo4j or Redis failure midway is `Unavailable` (nothing committed).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio.to_thread
import redis.asyncio as aioredis
from loguru import logger
from neo4j import AsyncDriver
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from service.memory.errors import GRAPH_OUTAGES, Busy, NotFound, Unavailable
from service.memory.llm_extractor import erase_project_cache
from service.stores import erasure as store
from service.stores.events import delete_stream
from service.stores.queue import IngestQueue

ERASURE_UNAVAILABLE = "Neo4j or Redis is unavailable; nothing was committed, retry later"
_OUTAGES = (*GRAPH_OUTAGES, RedisError)


@dataclass(frozen=True, slots=True)
class ErasureDeps:
    """What erasure touches: every store, and how long a claimed episode counts as busy."""

    pool: AsyncConnectionPool
    graph: AsyncDriver
    graph_database: str
    redis: aioredis.Redis
    cache: SyncRedis
    queue: IngestQueue
    busy_window: timedelta


async def _erase(
    deps: ErasureDeps, what: str, missing: str, rows: Callable[[AsyncConnection], Awaitable[bool]]
) -> None:
    """Run `rows` (delete the rows, clean up everywhere else, commit) on a pooled connection and
    turn what the stores report into the domain's refusals."""
    try:
        async with deps.pool.connection() as conn:
            found = await rows(conn)
    except store.InProgress:
        raise Busy(f"A worker is processing this {what}'s episodes; retry shortly") from None
    except _OUTAGES as exc:
        raise Unavailable(ERASURE_UNAVAILABLE) from exc
    if not found:
        raise NotFound(missing)


async def delete_episode(deps: ErasureDeps, project_id: uuid.UUID, episode_id: uuid.UUID) -> None:
    """Raises NotFound when the project has no such episode, Busy while a worker processes it."""

    async def graph() -> None:
        await store.delete_episode_graph(deps.graph, deps.graph_database, str(project_id), str(episode_id))

    def rows(conn: AsyncConnection) -> Awaitable[bool]:
        return store.delete_episode_rows(conn, project_id, episode_id, deps.busy_window, graph)

    await _erase(deps, "episode", f"No episode {episode_id}", rows)


def _erase_redis_blocking(deps: ErasureDeps, project_id: str, job_ids: list[str]) -> None:
    """The LLM cache (SCAN + UNLINK) and the project's finished or waiting RQ jobs."""
    erase_project_cache(deps.cache, project_id)
    deps.queue.discard_blocking(job_ids)


async def erase_project(deps: ErasureDeps, tenant_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Erase the project everywhere; raises NotFound when the tenant has no such project."""

    async def everything_else(job_ids: list[str]) -> None:
        removed = await store.erase_project_graph(deps.graph, deps.graph_database, str(project_id))
        await delete_stream(deps.redis, project_id)
        await anyio.to_thread.run_sync(_erase_redis_blocking, deps, str(project_id), job_ids)
        logger.info("erased project {project}: {n} entities and episodes", project=project_id, n=removed)

    def rows(conn: AsyncConnection) -> Awaitable[bool]:
        return store.erase_project_rows(conn, tenant_id, project_id, deps.busy_window, everything_else)

    await _erase(deps, "project", f"No project {project_id}", rows)
