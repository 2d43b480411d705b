"""Accepting episodes: commit the rows, queue the work, or refuse cleanly.

An episode is accepted only once its row is committed and its job is queued; if the job
cannot be queued the rows are removed again and the client is told to retry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from loguru import logger
from psycopg.errors import ForeignKeyViolation
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from service.memory.errors import NotFound, Unavailable
from service.observability.metrics import ApiMetrics
from service.stores import episodes as store
from service.stores.episodes import EpisodeRow, NewEpisode
from service.stores.queue import IngestQueue

QUEUE_UNAVAILABLE = "The queue is unavailable; retry later"


@dataclass(frozen=True, slots=True)
class IntakeDeps:
    """What accepting episodes needs."""

    pool: AsyncConnectionPool
    queue: IngestQueue
    metrics: ApiMetrics


def _refuse(deps: IntakeDeps, reason: str, detail: str, count: int) -> Unavailable:
    deps.metrics.episodes_rejected.labels(reason).inc(count)
    return Unavailable(detail)


async def accept_episodes(
    deps: IntakeDeps, project_id: uuid.UUID, items: list[NewEpisode]
) -> tuple[list[EpisodeRow], list[EpisodeRow]]:
    """Returns (accepted now, earlier episodes matched by idempotency key).

    Raises `Unavailable` when the queue is full or unreachable, `NotFound` when the project
    was deleted meanwhile.
    """
    try:
        size = await deps.queue.size()
    except RedisError as exc:
        logger.warning("queue unavailable: {error}", error=type(exc).__name__)
        raise _refuse(deps, "queue_unavailable", QUEUE_UNAVAILABLE, len(items)) from None
    if size >= deps.queue.max_size:
        raise _refuse(deps, "queue_full", f"The queue is full ({size} jobs); retry later", len(items))
    async with deps.pool.connection() as conn:
        try:
            inserted, duplicates = await store.insert_episodes(conn, project_id, items)
        except ForeignKeyViolation:  # the project was deleted after it was looked up
            raise NotFound(f"No project {project_id}") from None
        if inserted:
            ids = [row.id for row in inserted]
            try:
                job_id = await deps.queue.enqueue(project_id, ids)
            except RedisError as exc:
                await store.delete_unaccepted(conn, ids)
                logger.warning("could not queue {n} episodes: {error}", n=len(ids), error=type(exc).__name__)
                raise _refuse(deps, "queue_unavailable", QUEUE_UNAVAILABLE, len(ids)) from None
            await store.set_job(conn, ids, job_id)
    deps.metrics.episodes_accepted.inc(len(inserted))
    return inserted, duplicates
