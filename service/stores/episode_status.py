"""Episode status changes in PostgreSQL: the worker's side (synchronous, batched)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg import Connection

from service.stores.episodes import READABLE_REFERENCE_TIME


@dataclass(frozen=True, slots=True)
class ClaimedEpisode:
    id: uuid.UUID
    project_id: uuid.UUID
    content: str
    source: str
    reference_time: datetime | None
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class StuckEpisode:
    id: uuid.UUID
    project_id: uuid.UUID
    job_id: str | None
    attempts: int


_CLAIMED = f"id, project_id, content, source, {READABLE_REFERENCE_TIME}, created_at, attempts"


def claim(conn: Connection, job_id: str | None, episode_ids: list[uuid.UUID]) -> list[ClaimedEpisode]:
    """Mark the job's unfinished episodes as processing; finished ones are skipped (a re-run is a no-op).

    The rows name their job, so a job claims what it owns now: episodes another job absorbed
    (`absorb`) are no longer its own, and on a retry it also claims those it absorbed. Rows
    without a job (or a call without one) are claimed by id.
    """
    params: tuple[object, ...] = (episode_ids,) if job_id is None else (job_id, episode_ids)
    where = "id = ANY(%s)" if job_id is None else "(job_id = %s OR (job_id IS NULL AND id = ANY(%s)))"
    rows = conn.execute(
        "UPDATE episodes SET status = 'processing', attempts = attempts + 1, updated_at = now()"  # noqa: S608
        f" WHERE {where} AND status IN ('queued', 'processing') RETURNING {_CLAIMED}",
        params,
    ).fetchall()
    return [ClaimedEpisode(*row) for row in rows]


def absorb(
    conn: Connection, job_id: str, waiting_jobs: list[str], room: int
) -> tuple[list[ClaimedEpisode], list[str]]:
    """Claim, for `job_id`, the episodes of whole waiting jobs (in queue order) while they fit in
    `room`; returns them and the jobs emptied, which are then safe to drop from the queue.

    A job with an episode already processing (a retry in flight) is left alone. A job that
    another worker starts meanwhile finds its rows reassigned and skips them (its claim waits
    on these row locks, then sees the new job id).
    """
    counts = conn.execute(
        "SELECT job_id, count(*) FILTER (WHERE status = 'queued'),"
        " count(*) FILTER (WHERE status = 'processing')"
        " FROM episodes WHERE job_id = ANY(%s) AND status IN ('queued', 'processing') GROUP BY job_id",
        (waiting_jobs,),
    ).fetchall()
    unfinished = {job: (int(queued), int(processing)) for job, queued, processing in counts}
    taken: list[str] = []
    for job in waiting_jobs:
        queued, processing = unfinished.get(job, (0, 0))
        if job == job_id or processing or queued > room:
            continue
        taken.append(job)
        room -= queued
    if not taken:
        return [], []
    rows = conn.execute(
        "UPDATE episodes SET status = 'processing', job_id = %s, attempts = attempts + 1,"  # noqa: S608
        f" updated_at = now() WHERE job_id = ANY(%s) AND status = 'queued' RETURNING {_CLAIMED}",
        (job_id, taken),
    ).fetchall()
    return [ClaimedEpisode(*row) for row in rows], taken


def complete(conn: Connection, episode_ids: list[uuid.UUID]) -> None:
    conn.execute(
        "UPDATE episodes SET status = 'completed', error = NULL, updated_at = now() WHERE id = ANY(%s)",
        (episode_ids,),
    )


def fail(conn: Connection, failures: dict[uuid.UUID, str]) -> None:
    if not failures:
        return
    conn.execute(
        "UPDATE episodes AS e SET status = 'failed', error = f.reason, updated_at = now()"
        " FROM unnest(%s::uuid[], %s::text[]) AS f(id, reason) WHERE e.id = f.id",
        (list(failures), list(failures.values())),
    )


def find_stuck(
    conn: Connection, queued_after: float, processing_after: float, limit: int
) -> list[StuckEpisode]:
    """Unfinished episodes untouched for longer than the given number of seconds."""
    rows = conn.execute(
        "SELECT id, project_id, job_id, attempts FROM episodes"
        " WHERE (status = 'queued' AND updated_at < now() - make_interval(secs => %s))"
        "    OR (status = 'processing' AND updated_at < now() - make_interval(secs => %s))"
        " ORDER BY updated_at LIMIT %s",
        (queued_after, processing_after, limit),
    ).fetchall()
    return [StuckEpisode(*row) for row in rows]


def requeued(conn: Connection, episode_ids: list[uuid.UUID], job_id: str) -> None:
    conn.execute(
        "UPDATE episodes SET status = 'queued', job_id = %s, updated_at = now() WHERE id = ANY(%s)",
        (job_id, episode_ids),
    )
