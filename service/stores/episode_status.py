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


def claim(conn: Connection, episode_ids: list[uuid.UUID]) -> list[ClaimedEpisode]:
    """Mark still-unfinished episodes as processing; finished ones are skipped (a re-run is a no-op)."""
    rows = conn.execute(
        "UPDATE episodes SET status = 'processing', attempts = attempts + 1, updated_at = now()"  # noqa: S608
        " WHERE id = ANY(%s) AND status IN ('queued', 'processing')"
        f" RETURNING id, project_id, content, source, {READABLE_REFERENCE_TIME}, created_at, attempts",
        (episode_ids,),
    ).fetchall()
    return [ClaimedEpisode(*row) for row in rows]


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
