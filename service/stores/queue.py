"""The ingest queue (RQ on Redis): enqueue from the API, and the queue's length."""

from __future__ import annotations

import asyncio
import uuid

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from service.settings import Settings
from service.stores.events import EpisodeEvent, add_events, status_event
from service.stores.redis import QUEUE_NAME

INGEST_TASK = "ingest_episodes"
"""The ingest job: a function of `worker.jobs`, and the `task` label of the worker's metrics."""
INGEST_FUNCTION = f"worker.jobs.{INGEST_TASK}"
# Seconds between retries of a failed job: quick at first, then backing off.
RETRY_INTERVALS = [2, 10, 30, 60, 120]
_WAITING = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
# A live worker refreshes its key every few seconds; a killed one's key is gone this long after.
WORKER_ALIVE_TTL_SECONDS = 20


def worker_alive_key(worker_name: str) -> str:
    return f"memstack:worker-alive:{worker_name}"


class IngestQueue:
    """Wraps RQ (synchronous) so the event loop never blocks on it."""

    def __init__(self, settings: Settings, connection: redis.Redis) -> None:
        self._settings = settings
        self._queue = Queue(QUEUE_NAME, connection=connection, default_timeout=settings.job_timeout_seconds)

    @property
    def max_size(self) -> int:
        return self._settings.queue_max_size

    def enqueue_blocking(
        self, episode_ids: list[str], announce: list[tuple[str, EpisodeEvent]] | None = None
    ) -> str:
        """Queue one job for the episodes, with the events that announce them.

        Events and job go in one MULTI/EXEC, events first, so no subscriber can see an
        episode's "processing" before its "queued".
        """
        retries = self._settings.job_max_retries
        with self._queue.connection.pipeline() as pipe:
            pipe.multi()
            add_events(pipe, announce or [])
            job = self._queue.enqueue(
                INGEST_FUNCTION,
                episode_ids,
                job_id=f"ingest-{uuid.uuid4().hex}",
                retry=Retry(max=retries, interval=RETRY_INTERVALS[:retries]) if retries else None,
                result_ttl=0,  # nothing reads job results; PostgreSQL holds the outcome
                failure_ttl=7 * 24 * 3600,
                pipeline=pipe,
            )
            pipe.execute()
        return str(job.id)

    async def enqueue(self, project_id: uuid.UUID, episode_ids: list[uuid.UUID]) -> str:
        """Queue the episodes, announcing each as "queued" on the project's event stream."""
        announce = [(str(project_id), status_event(str(i), "queued")) for i in episode_ids]
        return await asyncio.to_thread(self.enqueue_blocking, [str(i) for i in episode_ids], announce)

    def job_alive(self, job_ids: list[str]) -> dict[str, bool]:
        """Whether each job may still run: waiting to, or started by a worker that is alive.

        RQ itself notices a dead worker's job only after the job timeout plus a minute (a
        SimpleWorker sends no heartbeat during a job), so liveness comes from our own key.
        """
        connection = self._queue.connection
        jobs = Job.fetch_many(job_ids, connection=connection)
        started = [
            job for job in jobs if job is not None and job.get_status(refresh=False) == JobStatus.STARTED
        ]
        pipe = connection.pipeline(transaction=False)
        for job in started:
            pipe.exists(worker_alive_key(job.worker_name or "-"))
        running = {job.id for job, exists in zip(started, pipe.execute(), strict=True) if exists}
        return {
            job_id: job is not None and (job.id in running or job.get_status(refresh=False) in _WAITING)
            for job_id, job in zip(job_ids, jobs, strict=True)
        }

    def discard_blocking(self, job_ids: list[str]) -> None:
        """Delete the jobs that are waiting or finished; a started one is left to its worker."""
        for job in Job.fetch_many(job_ids, connection=self._queue.connection):
            if job is not None and job.get_status(refresh=False) != JobStatus.STARTED:
                job.delete(remove_from_queue=True)

    async def size(self) -> int:
        return await asyncio.to_thread(lambda: self._queue.count)
