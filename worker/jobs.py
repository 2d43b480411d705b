"""RQ job functions: thin wrappers that call into service.memory with the worker's context."""

from __future__ import annotations

import time
import uuid

from loguru import logger
from rq import get_current_job
from rq.job import Job

from service.memory.ingest import ingest_batch
from service.stores.queue import INGEST_TASK
from worker import context


def _left_after_this(job: Job | None) -> int:
    return max((job.retries_left or 0) - 1, 0) if job else 0


def ingest_episodes(episode_ids: list[str]) -> dict[str, int]:
    ctx = context.current()
    job = get_current_job()
    final_attempt = job is None or not job.retries_left
    started = time.perf_counter()
    try:
        outcome = ingest_batch(
            ctx.ingest_deps,
            [uuid.UUID(i) for i in episode_ids],
            final_attempt=final_attempt,
            job_id=job.id if job else None,
        )
    except Exception as exc:
        ctx.metrics.jobs.labels(INGEST_TASK, "failed" if final_attempt else "retried").inc()
        # RQ counts this retry down after the job returns, hence the - 1.
        logger.warning(
            "ingest of {n} episodes failed ({error}); {what}",
            n=len(episode_ids),
            error=type(exc).__name__,
            what="no retries left" if final_attempt else f"retrying ({_left_after_this(job)} more left)",
        )
        raise
    finally:
        ctx.metrics.job_duration.labels(INGEST_TASK).observe(time.perf_counter() - started)
    ctx.metrics.jobs.labels(INGEST_TASK, "failed" if outcome.failed else "succeeded").inc()
    return {"completed": len(outcome.completed), "failed": len(outcome.failed), "skipped": outcome.skipped}
