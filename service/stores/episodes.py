"""Episode rows in PostgreSQL: the API's side (insert in batches, read, page)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

EpisodeStatus = Literal["queued", "processing", "completed", "failed"]


class EpisodeRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    project_id: uuid.UUID
    content: str
    source: str
    reference_time: datetime | None
    metadata: dict[str, Any]
    idempotency_key: str | None
    status: EpisodeStatus
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewEpisode:
    content: str
    source: str
    reference_time: datetime | None
    metadata: dict[str, Any]
    idempotency_key: str | None


# The API refuses reference times outside these bounds; a row stored before it did reads as
# null rather than failing every read of its project (psycopg cannot load year 0 or 10000).
READABLE_REFERENCE_TIME = (
    "CASE WHEN reference_time BETWEEN '0001-01-02 00:00:00+00' AND '9999-12-30 23:59:59.999999+00'"
    " THEN reference_time END AS reference_time"
)
_COLUMNS = (
    f"id, project_id, content, source, {READABLE_REFERENCE_TIME}, metadata, idempotency_key,"
    " status, attempts, error, created_at, updated_at"
)


async def insert_episodes(
    conn: AsyncConnection, project_id: uuid.UUID, episodes: list[NewEpisode]
) -> tuple[list[EpisodeRow], list[EpisodeRow]]:
    """Insert in one statement; returns (inserted, the episode each repeated item matched).

    An idempotency key seen before, or repeated inside the batch, yields no new row: the item
    is answered with the episode that holds the key.
    """
    ids = [uuid.uuid4() for _ in episodes]
    async with conn.transaction():  # a row that cannot be returned is not kept either
        inserted = await _insert(conn, project_id, episodes, ids)
    return await _with_replays(conn, project_id, episodes, ids, inserted)


async def _insert(
    conn: AsyncConnection, project_id: uuid.UUID, episodes: list[NewEpisode], ids: list[uuid.UUID]
) -> list[EpisodeRow]:
    cur = conn.cursor(row_factory=class_row(EpisodeRow))
    await cur.execute(
        f"INSERT INTO episodes (id, project_id, content, source, reference_time, metadata, idempotency_key)"  # noqa: S608
        " SELECT i, %s, c, s, r, m, k FROM unnest("
        "  %s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[], %s::text[]"
        " ) AS t(i, c, s, r, m, k)"
        f" ON CONFLICT (project_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
        (
            project_id,
            ids,
            [e.content for e in episodes],
            [e.source for e in episodes],
            [e.reference_time for e in episodes],
            [Jsonb(e.metadata) for e in episodes],
            [e.idempotency_key for e in episodes],
        ),
    )
    return await cur.fetchall()


async def _with_replays(
    conn: AsyncConnection,
    project_id: uuid.UUID,
    episodes: list[NewEpisode],
    ids: list[uuid.UUID],
    inserted: list[EpisodeRow],
) -> tuple[list[EpisodeRow], list[EpisodeRow]]:
    cur = conn.cursor(row_factory=class_row(EpisodeRow))
    inserted_ids = {row.id for row in inserted}
    by_key = {row.idempotency_key: row for row in inserted if row.idempotency_key}
    repeated = [e.idempotency_key for e, i in zip(episodes, ids, strict=True) if i not in inserted_ids]
    missing = [key for key in repeated if key and key not in by_key]
    if missing:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM episodes WHERE project_id = %s AND idempotency_key = ANY(%s)",  # noqa: S608
            (project_id, missing),
        )
        by_key.update({row.idempotency_key: row for row in await cur.fetchall() if row.idempotency_key})
    # A key whose first holder vanished meanwhile (an insert rolled back) has nothing to return.
    return inserted, [by_key[key] for key in repeated if key and key in by_key]


async def set_job(conn: AsyncConnection, episode_ids: list[uuid.UUID], job_id: str) -> None:
    await conn.execute("UPDATE episodes SET job_id = %s WHERE id = ANY(%s)", (job_id, episode_ids))


async def delete_unaccepted(conn: AsyncConnection, episode_ids: list[uuid.UUID]) -> None:
    """Undo an insert whose job could not be queued: nothing is accepted half-way."""
    await conn.execute("DELETE FROM episodes WHERE id = ANY(%s) AND job_id IS NULL", (episode_ids,))


async def get_episode(
    conn: AsyncConnection, project_id: uuid.UUID, episode_id: uuid.UUID
) -> EpisodeRow | None:
    cur = conn.cursor(row_factory=class_row(EpisodeRow))
    await cur.execute(
        f"SELECT {_COLUMNS} FROM episodes WHERE id = %s AND project_id = %s",  # noqa: S608
        (episode_id, project_id),
    )
    return await cur.fetchone()


async def list_episodes(
    conn: AsyncConnection,
    project_id: uuid.UUID,
    status: EpisodeStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[EpisodeRow]:
    cur = conn.cursor(row_factory=class_row(EpisodeRow))
    after_at, after_id = after if after else (None, None)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM episodes WHERE project_id = %s"  # noqa: S608
        " AND (%s::text IS NULL OR status = %s)"
        " AND (%s::timestamptz IS NULL OR (created_at, id) > (%s, %s))"
        " ORDER BY created_at, id LIMIT %s",
        (project_id, status, status, after_at, after_at, after_id, limit),
    )
    return await cur.fetchall()
