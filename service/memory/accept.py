"""Accepting episodes: commit the rows, queue the work, or refuse cleanly, for many requests at once.

An episode is accepted only once its row is committed and its job is queued; if the job
cannot be queued the rows are removed again and the client is told to retry.

Requests arriving together are accepted together (group commit): while one batch is being
written, the requests that come in meanwhile wait for the next, which then costs one queue
check, one PostgreSQL transaction, one queued job and one status update for all of them.
An idle service writes each request at once, so batching adds no latency when there is no
load, and under load the work per request shrinks instead of piling up behind the pool.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from loguru import logger
from psycopg.errors import ForeignKeyViolation
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from service.batching import Batcher
from service.memory.errors import NotFound, Unavailable
from service.observability.metrics import ApiMetrics
from service.stores import episodes as store
from service.stores.episodes import EpisodeRow, Inserted, NewEpisode, Submission
from service.stores.queue import IngestQueue, new_job_id

Answer = tuple[list[EpisodeRow], list[EpisodeRow]]
"""(accepted now, earlier episodes matched by idempotency key)"""
QUEUE_UNAVAILABLE = "The queue is unavailable; retry later"
# One batch holds at most this many episodes (a bulk request alone may hold up to 1000).
MAX_BATCH_EPISODES = 1000
# Batches written at the same time: one writes while the next one fills.
CONCURRENT_BATCHES = 2


@dataclass(frozen=True, slots=True)
class IntakeDeps:
    """What accepting episodes needs."""

    pool: AsyncConnectionPool
    queue: IngestQueue
    metrics: ApiMetrics


class EpisodeIntake:
    """The API process's one way in for episodes; `accept` may be called by any number of requests."""

    def __init__(self, deps: IntakeDeps) -> None:
        self._deps = deps
        self._batcher: Batcher[Submission, Answer] = Batcher(
            self._write,
            concurrency=CONCURRENT_BATCHES,
            max_weight=MAX_BATCH_EPISODES,
            weight=lambda submission: len(submission.episodes),
            name="episode-intake",
        )

    async def accept(self, tenant_id: uuid.UUID, project_id: uuid.UUID, items: list[NewEpisode]) -> Answer:
        """Returns (accepted now, earlier episodes matched by idempotency key).

        Raises `NotFound` when the tenant has no such project, `Unavailable` when the queue is
        full or unreachable. A request cancelled while its batch is written may still have been
        accepted, as a request whose answer was lost on the way may: clients retry with a key.
        """
        return await self._batcher.submit(Submission(tenant_id, project_id, items))

    async def aclose(self) -> None:
        """Let the batches being written finish (requests still waiting are answered)."""
        await self._batcher.aclose()

    async def _write(self, batch: list[Submission]) -> Sequence[Answer | Exception]:
        deps = self._deps
        count = sum(len(s.episodes) for s in batch)
        try:
            size = await deps.queue.size()
        except RedisError as exc:
            logger.warning("queue unavailable: {error}", error=type(exc).__name__)
            return self._refuse_all(batch, "queue_unavailable", QUEUE_UNAVAILABLE, count)
        if size >= deps.queue.max_size:
            return self._refuse_all(
                batch, "queue_full", f"The queue is full ({size} jobs); retry later", count
            )
        job_id = new_job_id()
        async with deps.pool.connection() as conn:
            try:
                outcomes = await store.insert_submissions(conn, batch, job_id)
            except ForeignKeyViolation:  # a project deleted while its episodes went in: once more
                outcomes = await store.insert_submissions(conn, batch, job_id)
            new = [
                (s.project_id, r.id) for s, o in zip(batch, outcomes, strict=True) if o for r in o.inserted
            ]
            queued = True
            if new:
                try:
                    await deps.queue.enqueue(new, job_id)
                except RedisError as exc:
                    await store.delete_unaccepted(conn, [episode_id for _, episode_id in new])
                    logger.warning(
                        "could not queue {n} episodes: {error}", n=len(new), error=type(exc).__name__
                    )
                    queued = False
        if queued:
            deps.metrics.episodes_accepted.inc(len(new))
        return [self._answer(s, o, queued) for s, o in zip(batch, outcomes, strict=True)]

    def _answer(self, submission: Submission, outcome: Inserted | None, queued: bool) -> Answer | Exception:
        if outcome is None:
            return NotFound(f"No project {submission.project_id}")
        if outcome.inserted and not queued:
            return self._refuse("queue_unavailable", QUEUE_UNAVAILABLE, len(outcome.inserted))
        return outcome.inserted, outcome.duplicates

    def _refuse_all(self, batch: list[Submission], reason: str, detail: str, count: int) -> list[Exception]:
        self._deps.metrics.episodes_rejected.labels(reason).inc(count)
        return [Unavailable(detail) for _ in batch]

    def _refuse(self, reason: str, detail: str, count: int) -> Unavailable:
        self._deps.metrics.episodes_rejected.labels(reason).inc(count)
        return Unavailable(detail)


@dataclass(frozen=True, slots=True)
class TenantIntake:
    """The process's `EpisodeIntake` on behalf of one tenant (the caller's)."""

    intake: EpisodeIntake
    tenant_id: uuid.UUID

    async def accept(self, project_id: uuid.UUID, items: list[NewEpisode]) -> Answer:
        """`EpisodeIntake.accept` for this tenant."""
        return await self.intake.accept(self.tenant_id, project_id, items)
