"""Accepting episodes: commit the rows, queue the work, or refuse cleanly.

An episode is accepted only once its row is committed and its job is queued; if the job
cannot be queued the rows are removed again and the client is told to retry.
"""

from __future__ import annotations

import uuid

from litestar.exceptions import HTTPException, NotFoundException
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from loguru import logger
from psycopg.errors import ForeignKeyViolation
from redis.exceptions import RedisError

from service.lifespan import Resources
from service.stores import episodes as store
from service.stores.episodes import EpisodeRow, NewEpisode

RETRY_AFTER_SECONDS = 5


class QueueUnavailable(HTTPException):
    status_code = HTTP_503_SERVICE_UNAVAILABLE


def _refuse(resources: Resources, reason: str, detail: str, count: int) -> QueueUnavailable:
    resources.metrics.episodes_rejected.labels(reason).inc(count)
    return QueueUnavailable(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def accept_episodes(
    resources: Resources, project_id: uuid.UUID, items: list[NewEpisode]
) -> tuple[list[EpisodeRow], list[EpisodeRow]]:
    """Returns (accepted now, earlier episodes matched by idempotency key)."""
    try:
        size = await resources.queue.size()
    except RedisError as exc:
        logger.warning("queue unavailable: {error}", error=type(exc).__name__)
        raise _refuse(
            resources, "queue_unavailable", "The queue is unavailable; retry later", len(items)
        ) from None
    if size >= resources.queue.max_size:
        raise _refuse(resources, "queue_full", f"The queue is full ({size} jobs); retry later", len(items))
    async with resources.pool.connection() as conn:
        try:
            inserted, duplicates = await store.insert_episodes(conn, project_id, items)
        except ForeignKeyViolation:  # the project was deleted after it was looked up
            raise NotFoundException(f"No project {project_id}") from None
        if inserted:
            ids = [row.id for row in inserted]
            try:
                job_id = await resources.queue.enqueue(project_id, ids)
            except RedisError as exc:
                await store.delete_unaccepted(conn, ids)
                logger.warning("could not queue {n} episodes: {error}", n=len(ids), error=type(exc).__name__)
                raise _refuse(
                    resources, "queue_unavailable", "The queue is unavailable; retry later", len(ids)
                ) from None
            await store.set_job(conn, ids, job_id)
    resources.metrics.episodes_accepted.inc(len(inserted))
    return inserted, duplicates
