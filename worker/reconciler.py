"""The reconciler: PostgreSQL is the truth, so episodes whose job is gone get a new one.

A job can vanish when Redis restarts, or be written off when its worker is killed. Every
RECONCILE_INTERVAL seconds one worker (an advisory lock elects it) looks for episodes left
queued or processing for too long whose job no longer exists or will not run again, and
queues them afresh, or marks them failed once they have used up their attempts.
"""

from __future__ import annotations

import threading
import uuid

from loguru import logger

from service.stores import episode_status
from service.stores.events import append_events, status_event
from service.stores.queue import IngestQueue, new_job_id
from worker.context import WorkerContext

RECONCILE_INTERVAL = 30.0
# Untouched this long, an unfinished episode has its job checked; a job still alive is left be.
STALE_AFTER_SECONDS = 30.0
BATCH = 500
_LOCK_ID = 0x6D656D72  # "memr"


def reconcile_once(ctx: WorkerContext, queue: IngestQueue) -> tuple[int, int]:
    """Returns (requeued, failed)."""
    max_attempts = ctx.settings.job_max_retries + 1
    with ctx.pool.connection() as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,)).fetchone()[0]:  # type: ignore[index]
            return 0, 0
        try:
            stuck = episode_status.find_stuck(conn, STALE_AFTER_SECONDS, STALE_AFTER_SECONDS, limit=5 * BATCH)
            alive = queue.job_alive(sorted({e.job_id for e in stuck if e.job_id}))
            orphans = [e for e in stuck if not (e.job_id and alive.get(e.job_id))]
            exhausted = {
                e.id: f"abandoned after {e.attempts} attempts" for e in orphans if e.attempts >= max_attempts
            }
            episode_status.fail(conn, exhausted)
            append_events(
                ctx.redis,
                (
                    (str(e.project_id), status_event(str(e.id), "failed", exhausted[e.id]))
                    for e in orphans
                    if e.id in exhausted
                ),
            )
            retry: list[uuid.UUID] = [e.id for e in orphans if e.id not in exhausted]
            for start in range(0, len(retry), BATCH):
                chunk = retry[start : start + BATCH]
                # Rows name the job first: a job claims the rows that name it (autocommit).
                job_id = new_job_id()
                episode_status.requeued(conn, chunk, job_id)
                queue.enqueue_blocking([str(i) for i in chunk], job_id=job_id)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    if retry or exhausted:
        logger.info("reconciler: requeued {r}, failed {f}", r=len(retry), f=len(exhausted))
    return len(retry), len(exhausted)


class Reconciler:
    def __init__(self, ctx: WorkerContext, queue: IngestQueue, interval: float = RECONCILE_INTERVAL) -> None:
        self._ctx = ctx
        self._queue = queue
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                reconcile_once(self._ctx, self._queue)
            except Exception as exc:  # a dependency may be down; try again next round
                logger.warning("reconciler round failed: {error}", error=type(exc).__name__)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
