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


@dataclass(frozen=True, slots=True)
class Submission:
    """One request's episodes for one project, on behalf of one tenant."""

    tenant_id: uuid.UUID
    project_id: uuid.UUID
    episodes: list[NewEpisode]


@dataclass(frozen=True, slots=True)
class Inserted:
    """What became of a submission: None when the tenant has no such project."""

    inserted: list[EpisodeRow]
    duplicates: list[EpisodeRow]


async def insert_submissions(
    conn: AsyncConnection, submissions: list[Submission], job_id: str
) -> list[Inserted | None]:
    """Insert every submission's episodes, queued for `job_id`, in one statement (one commit).

    A submission whose project its tenant does not own inserts and matches nothing (None). An
    idempotency key seen before, or repeated inside the batch, yields no new row: the item is
    answered with the episode that holds the key.
    """
    ids = [[uuid.uuid4() for _ in s.episodes] for s in submissions]
    pairs = [(s, i) for s, episode_ids in zip(submissions, ids, strict=True) for i in episode_ids]
    inserted = await _insert(conn, submissions, ids, job_id)
    by_id = {row.id: row for row in inserted}
    replays = await _replays(
        conn, [(s, e) for (s, i), e in zip(pairs, _items(submissions), strict=True) if i not in by_id]
    )
    outcomes: list[Inserted | None] = []
    for submission, episode_ids in zip(submissions, ids, strict=True):
        rows = [by_id[i] for i in episode_ids if i in by_id]
        keys = [
            e.idempotency_key for e, i in zip(submission.episodes, episode_ids, strict=True) if i not in by_id
        ]
        # A key whose first holder vanished meanwhile (an insert rolled back) has nothing to return.
        found = [
            replays[(submission.project_id, k)] for k in keys if k and (submission.project_id, k) in replays
        ]
        outcomes.append(Inserted(rows, found) if rows or found else None)
    return outcomes


def _items(submissions: list[Submission]) -> list[NewEpisode]:
    return [e for s in submissions for e in s.episodes]


async def _insert(
    conn: AsyncConnection, submissions: list[Submission], ids: list[list[uuid.UUID]], job_id: str
) -> list[EpisodeRow]:
    """One INSERT of every item whose project belongs to the submitting tenant; atomic alone."""
    items = [
        (s, e, i)
        for s, episode_ids in zip(submissions, ids, strict=True)
        for e, i in zip(s.episodes, episode_ids, strict=True)
    ]
    cur = conn.cursor(row_factory=class_row(EpisodeRow))
    await cur.execute(
        "INSERT INTO episodes"  # noqa: S608
        " (id, project_id, content, source, reference_time, metadata, idempotency_key, job_id)"
        " SELECT t.i, t.p, t.c, t.s, t.r, t.m, t.k, %s FROM unnest("
        "  %s::uuid[], %s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[],"
        "  %s::text[]) WITH ORDINALITY AS t(i, p, tenant, c, s, r, m, k, n)"
        " JOIN projects ON projects.id = t.p AND projects.tenant_id = t.tenant ORDER BY t.n"
        f" ON CONFLICT (project_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
        (
            job_id,
            [i for _, _, i in items],
            [s.project_id for s, _, _ in items],
            [s.tenant_id for s, _, _ in items],
            [e.content for _, e, _ in items],
            [e.source for _, e, _ in items],
            [e.reference_time for _, e, _ in items],
            [Jsonb(e.metadata) for _, e, _ in items],
            [e.idempotency_key for _, e, _ in items],
        ),
    )
    return await cur.fetchall()


async def _replays(
    conn: AsyncConnection, repeated: list[tuple[Submission, NewEpisode]]
) -> dict[tuple[uuid.UUID, str], EpisodeRow]:
    """The rows holding the idempotency keys of items that inserted nothing, by (project, key);
    only in projects of the submitting tenant."""
    wanted = {(s.tenant_id, s.project_id, e.idempotency_key) for s, e in repeated if e.idempotency_key}
    holders: dict[tuple[uuid.UUID, str], EpisodeRow] = {}
    if not wanted:
        return holders
    cur = conn.cursor(row_factory=class_row(EpisodeRow))
    await cur.execute(
        f"SELECT {_COLUMNS} FROM episodes WHERE (project_id, idempotency_key) IN ("  # noqa: S608
        " SELECT t.p, t.k FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS t(tenant, p, k)"
        " JOIN projects ON projects.id = t.p AND projects.tenant_id = t.tenant)",
        ([t for t, _, _ in wanted], [p for _, p, _ in wanted], [k for _, _, k in wanted]),
    )
    for row in await cur.fetchall():
        if row.idempotency_key:
            holders[(row.project_id, row.idempotency_key)] = row
    return holders


async def delete_unaccepted(conn: AsyncConnection, episode_ids: list[uuid.UUID]) -> None:
    """Undo an insert whose job could not be queued: nothing is accepted half-way."""
    await conn.execute("DELETE FROM episodes WHERE id = ANY(%s) AND status = 'queued'", (episode_ids,))


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
