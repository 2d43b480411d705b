"""The ingest queue (RQ on Redis): enqueue from the API, and the queue's length."""

from __future__ import annotations

import asyncio
import uuid

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from service.settings import Settings
from service.stores.redis import QUEUE_NAME

INGEST_TASK = "worker.jobs.ingest_episodes"
# Seconds between retries of a failed job: quick at first, then backing off.
RETRY_INTERVALS = [2, 10, 30, 60, 120]
_ALIVE = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED})


class IngestQueue:
    """Wraps RQ (synchronous) so the event loop never blocks on it."""

    def __init__(self, settings: Settings, connection: redis.Redis) -> None:
        self._settings = settings
        self._queue = Queue(QUEUE_NAME, connection=connection, default_timeout=settings.job_timeout_seconds)

    @property
    def max_size(self) -> int:
        return self._settings.queue_max_size

    def enqueue_blocking(self, episode_ids: list[str]) -> str:
        """For synchronous callers (the worker's reconciler, the CLI)."""
        retries = self._settings.job_max_retries
        job = self._queue.enqueue(
            INGEST_TASK,
            episode_ids,
            job_id=f"ingest-{uuid.uuid4().hex}",
            retry=Retry(max=retries, interval=RETRY_INTERVALS[:retries]) if retries else None,
            result_ttl=300,
            failure_ttl=7 * 24 * 3600,
        )
        return str(job.id)

    async def enqueue(self, episode_ids: list[uuid.UUID]) -> str:
        return await asyncio.to_thread(self.enqueue_blocking, [str(i) for i in episode_ids])

    def job_alive(self, job_ids: list[str]) -> dict[str, bool]:
        """Whether each job still exists and may yet run (queued, scheduled, deferred or started)."""
        alive: dict[str, bool] = {}
        for job_id, job in zip(
            job_ids, Job.fetch_many(job_ids, connection=self._queue.connection), strict=True
        ):
            status = job.get_status(refresh=False) if job is not None else None
            alive[job_id] = status in _ALIVE
        return alive

    async def size(self) -> int:
        return await asyncio.to_thread(lambda: self._queue.count)
