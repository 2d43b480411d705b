"""Deleting an episode (and what only it supported) and erasing a whole project.

Both run inside one PostgreSQL transaction that deletes the rows first and commits last:
- the row locks taken by the DELETE make a worker's `claim()` of those episodes wait, and
  once we commit it finds no rows, so no job can start writing their graph afterwards;
- an episode a worker has already claimed (`processing`, touched within the job timeout)
  may still be writing its graph, so we refuse (`Busy`) rather than race it; the caller
  answers 409 with Retry-After;
- a crash anywhere before the commit leaves the PostgreSQL rows in place, so the same
  DELETE can simply be repeated; the graph, stream and cache steps are idempotent.
Project erasure also holds the project row FOR UPDATE, so no episode can be added to it
meanwhile, and deletes the graph in batches of `GRAPH_BATCH` nodes per transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import LiteralString

import anyio.to_thread
from loguru import logger
from neo4j import AsyncDriver, AsyncManagedTransaction
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError
from psycopg import AsyncConnection
from redis.exceptions import RedisError
from rq.job import Job, JobStatus

from service.lifespan import Resources
from service.memory.llm_extractor import erase_project_cache
from service.settings import Settings
from service.stores.events import delete_stream
from service.stores.redis import create_sync_redis

GRAPH_BATCH = 1000
BUSY_RETRY_AFTER_SECONDS = 5
# Per graph transaction; past it the DELETE answers 503 (nothing committed in PostgreSQL).
RETRY_SECONDS = 5.0

# Facts the episode supported: drop its id; delete those it alone supported.
_EPISODE_FACTS: LiteralString = """
MATCH ()-[r:RELATES_TO]->()
WHERE r.project_id = $project_id AND $episode_id IN r.episodes
WITH r, [x IN r.episodes WHERE x <> $episode_id] AS rest
CALL (r, rest) { WITH r, rest WHERE size(rest) = 0 DELETE r }
CALL (r, rest) { WITH r, rest WHERE size(rest) > 0 SET r.episodes = rest }
"""
# Entities no other episode mentions and no remaining fact touches; then the episode node.
_EPISODE_NODES: LiteralString = """
MATCH (ep:Episode {id: $episode_id})
WHERE ep.project_id = $project_id
OPTIONAL MATCH (ep)-[:MENTIONS]->(n:Entity)
WHERE NOT EXISTS { MATCH (other:Episode)-[:MENTIONS]->(n) WHERE other <> ep }
  AND NOT EXISTS { MATCH (n)-[:RELATES_TO]-() }
WITH ep, collect(n) AS orphans
FOREACH (n IN orphans | DETACH DELETE n)
DETACH DELETE ep
"""
# One batch of a project's nodes (with their relationships); returns how many were deleted.
_PROJECT_BATCH: dict[str, LiteralString] = {
    "Episode": """
MATCH (n:Episode) WHERE n.project_id = $project_id
WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS deleted
""",
    "Entity": """
MATCH (n:Entity) WHERE n.project_id = $project_id
WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS deleted
""",
    "RELATES_TO": """
MATCH ()-[r:RELATES_TO]->() WHERE r.project_id = $project_id
WITH r LIMIT $batch DELETE r RETURN count(*) AS deleted
""",
}


class Busy(Exception):
    """An episode is being processed by a worker right now; retry shortly."""


class Unavailable(Exception):
    """Neo4j or Redis failed midway; nothing was committed in PostgreSQL, so retry later."""


_UNAVAILABLE = (ServiceUnavailable, SessionExpired, TransientError, RedisError)


async def delete_episode_graph(driver: AsyncDriver, database: str, project_id: str, episode_id: str) -> None:
    async def work(tx: AsyncManagedTransaction) -> None:
        params = {"project_id": project_id, "episode_id": episode_id}
        await (await tx.run(_EPISODE_FACTS, params)).consume()
        await (await tx.run(_EPISODE_NODES, params)).consume()

    async with driver.session(database=database, max_transaction_retry_time=RETRY_SECONDS) as session:
        await session.execute_write(work)


async def erase_project_graph(
    driver: AsyncDriver, database: str, project_id: str, batch_size: int = GRAPH_BATCH
) -> int:
    """Delete every node and relationship of the project, `batch_size` per transaction."""

    async def batch(tx: AsyncManagedTransaction, query: LiteralString) -> int:
        record = await (await tx.run(query, project_id=project_id, batch=batch_size)).single()
        return int(record["deleted"]) if record else 0

    total = 0
    async with driver.session(database=database, max_transaction_retry_time=RETRY_SECONDS) as session:
        for query in _PROJECT_BATCH.values():
            while deleted := await session.execute_write(batch, query):
                total += deleted
    return total


def _refuse_if_processing(rows: list[tuple[str, float]], recent: float) -> None:
    if any(status == "processing" and age < recent for status, age in rows):
        raise Busy


async def delete_episode_rows(
    conn: AsyncConnection,
    project_id: uuid.UUID,
    episode_id: uuid.UUID,
    busy_window: timedelta,
    then: Callable[[], Awaitable[None]],
) -> bool:
    """Delete the episode row, run `then` (the graph cleanup), commit. False when there is none."""
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM episodes WHERE id = %s AND project_id = %s"
            " RETURNING status, extract(epoch FROM now() - updated_at)",
            (episode_id, project_id),
        )
        rows = [(str(s), float(a)) for s, a in await cur.fetchall()]
        if not rows:
            return False
        _refuse_if_processing(rows, busy_window.total_seconds())
        await then()
    return True


async def erase_project_rows(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    project_id: uuid.UUID,
    busy_window: timedelta,
    then: Callable[[list[str]], Awaitable[None]],
) -> bool:
    """Delete the project's rows, run `then(job ids)` (graph, Redis), commit. False when there is none."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT 1 FROM projects WHERE id = %s AND tenant_id = %s FOR UPDATE", (project_id, tenant_id)
        )
        if await cur.fetchone() is None:
            return False
        cur = await conn.execute(
            "DELETE FROM episodes WHERE project_id = %s"
            " RETURNING status, extract(epoch FROM now() - updated_at), job_id",
            (project_id,),
        )
        deleted = await cur.fetchall()
        _refuse_if_processing([(str(s), float(a)) for s, a, _ in deleted], busy_window.total_seconds())
        await then(sorted({str(job) for _, _, job in deleted if job}))
        await conn.execute("DELETE FROM projects WHERE id = %s", (project_id,))
    return True


def _erase_redis_blocking(settings: Settings, project_id: str, job_ids: list[str]) -> None:
    """The LLM cache (SCAN + UNLINK) and the project's finished or waiting RQ jobs."""
    client = create_sync_redis(settings)
    try:
        erase_project_cache(client, project_id)
        for job in Job.fetch_many(job_ids, connection=client):
            if job is not None and job.get_status(refresh=False) != JobStatus.STARTED:
                job.delete(remove_from_queue=True)
    finally:
        client.close()


async def delete_episode(resources: Resources, project_id: uuid.UUID, episode_id: uuid.UUID) -> bool:
    """False when the project has no such episode; raises Busy while a worker processes it."""
    settings = resources.settings

    async def graph() -> None:
        await delete_episode_graph(resources.graph, settings.neo4j_database, str(project_id), str(episode_id))

    window = timedelta(seconds=settings.job_timeout_seconds)
    try:
        async with resources.pool.connection() as conn:
            return await delete_episode_rows(conn, project_id, episode_id, window, graph)
    except _UNAVAILABLE as exc:
        raise Unavailable(type(exc).__name__) from exc


async def erase_project(resources: Resources, tenant_id: uuid.UUID, project_id: uuid.UUID) -> bool:
    """Erase the project everywhere; False when the tenant has no such project."""
    settings = resources.settings

    async def everything_else(job_ids: list[str]) -> None:
        removed = await erase_project_graph(resources.graph, settings.neo4j_database, str(project_id))
        await delete_stream(resources.redis, project_id)
        await anyio.to_thread.run_sync(_erase_redis_blocking, settings, str(project_id), job_ids)
        logger.info("erased project {project}: {n} graph items", project=project_id, n=removed)

    window = timedelta(seconds=settings.job_timeout_seconds)
    try:
        async with resources.pool.connection() as conn:
            return await erase_project_rows(conn, tenant_id, project_id, window, everything_else)
    except _UNAVAILABLE as exc:
        raise Unavailable(type(exc).__name__) from exc
