"""The ingest queue (RQ on Redis): enqueue from the API, and the queue's length."""

from __future__ import annotations

import asyncio
import uuid

import redis
import redis.asyncio as aioredis
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation
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


def new_job_id() -> str:
    """Chosen before the job is queued, so the episodes' rows can name it when they are inserted."""
    return f"ingest-{uuid.uuid4().hex}"


def worker_alive_key(worker_name: str) -> str:
    return f"memstack:worker-alive:{worker_name}"


class IngestQueue:
    """Wraps RQ (synchronous) so the event loop never blocks on it."""

    def __init__(
        self, settings: Settings, connection: redis.Redis, async_connection: aioredis.Redis | None = None
    ) -> None:
        """`async_connection`, when given, answers `size()` without a thread hop."""
        self._settings = settings
        self._queue = Queue(QUEUE_NAME, connection=connection, default_timeout=settings.job_timeout_seconds)
        self._async = async_connection

    @property
    def max_size(self) -> int:
        return self._settings.queue_max_size

    def _queue_job(self, pipe: redis.client.Pipeline, episode_ids: list[str], job_id: str) -> str:
        retries = self._settings.job_max_retries
        job = self._queue.enqueue(
            INGEST_FUNCTION,
            episode_ids,
            job_id=job_id,
            retry=Retry(max=retries, interval=RETRY_INTERVALS[:retries]) if retries else None,
            result_ttl=0,  # nothing reads job results; PostgreSQL holds the outcome
            failure_ttl=7 * 24 * 3600,
            pipeline=pipe,
        )
        return str(job.id)

    def enqueue_blocking(
        self,
        episode_ids: list[str],
        announce: list[tuple[str, EpisodeEvent]] | None = None,
        job_id: str | None = None,
    ) -> str:
        """Queue one job for the episodes, with the events that announce them.

        Events and job go in one MULTI/EXEC, events first, so no subscriber can see an
        episode's "processing" before its "queued".
        """
        with self._queue.connection.pipeline() as pipe:
            pipe.multi()
            add_events(pipe, announce or [])
            queued = self._queue_job(pipe, episode_ids, job_id or new_job_id())
            pipe.execute()
        return queued

    async def enqueue(self, episodes: list[tuple[uuid.UUID, uuid.UUID]], job_id: str) -> None:
        """Queue job `job_id` for the (project id, episode id) pairs, announcing each episode as
        "queued" on its project's event stream (one MULTI/EXEC, as `enqueue_blocking`).

        With an async client, RQ only writes its commands into a pipeline that is never sent
        (no I/O: a job without dependencies needs no reads), and the async client sends them:
        no thread hop, whose wait for the GIL behind a busy event loop was most of its cost.
        """
        announce = [(str(project_id), status_event(str(i), "queued")) for project_id, i in episodes]
        ids = [str(i) for _, i in episodes]
        if self._async is None:
            await asyncio.to_thread(self.enqueue_blocking, ids, announce, job_id)
            return
        with self._queue.connection.pipeline() as recorder:
            recorder.multi()  # as RQ expects of a pipeline; MULTI/EXEC are not in the stack
            add_events(recorder, announce)
            self._queue_job(recorder, ids, job_id)
            commands = list(recorder.command_stack)
        async with self._async.pipeline(transaction=True) as pipe:
            for args, options in commands:
                pipe.execute_command(*args, **options)
            await pipe.execute()

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

    def waiting_blocking(self, limit: int) -> list[str]:
        """The ids of the next `limit` jobs waiting in the queue, oldest first."""
        ids = self._queue.connection.lrange(self._queue.key, 0, limit - 1)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def drop_waiting_blocking(self, job_ids: list[str]) -> int:
        """Take the jobs off the queue and delete them, unless a worker took one first; returns
        how many were dropped. Only for jobs whose episodes another job has absorbed."""
        connection = self._queue.connection
        pipe = connection.pipeline(transaction=False)
        for job_id in job_ids:  # ids are unique and near the head: stop at the first match
            pipe.lrem(self._queue.key, 1, job_id)
        removed = [job_id for job_id, n in zip(job_ids, pipe.execute(), strict=True) if n]
        for job_id in removed:  # off the list, so no worker can start it: only its keys are left
            job = Job(job_id, connection=connection)
            pipe.delete(job.key, job.dependents_key, job.dependencies_key)
        pipe.execute()
        return len(removed)

    def discard_blocking(self, job_ids: list[str]) -> None:
        """Delete the jobs that are waiting or finished; a started one is left to its worker."""
        for job in Job.fetch_many(job_ids, connection=self._queue.connection):
            try:
                if job is not None and job.get_status(refresh=False) != JobStatus.STARTED:
                    job.delete(remove_from_queue=True)
            except InvalidJobOperation:  # finished and removed meanwhile (results are not kept)
                continue

    async def size(self) -> int:
        """Jobs waiting in the queue (RQ's count: the length of its list)."""
        if self._async is not None:
            return int(await self._async.llen(self._queue.key))
        return await asyncio.to_thread(lambda: self._queue.count)
