"""Per-project event streams (Redis Streams): the worker appends, SSE clients read."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import cast

import msgspec
import redis
import redis.asyncio as aioredis
from redis.client import Pipeline

# Enough history for a client to reconnect after a blip; older entries are trimmed.
STREAM_MAX_LEN = 10_000


def stream_key(project_id: uuid.UUID | str) -> str:
    return f"memstack:events:{project_id}"


class EpisodeEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    episode_id: str
    status: str
    at: float
    error: str | None = None


def add_events(pipe: Pipeline, events: Iterable[tuple[str, EpisodeEvent]]) -> int:
    """Queue XADDs of (project_id, event) pairs on a pipeline; returns how many."""
    count = 0
    for project_id, event in events:
        pipe.xadd(
            stream_key(project_id),
            {"data": msgspec.json.encode(event)},
            maxlen=STREAM_MAX_LEN,
            approximate=True,
        )
        count += 1
    return count


def append_events(connection: redis.Redis, events: Iterable[tuple[str, EpisodeEvent]]) -> None:
    """Append (project_id, event) pairs in one pipeline round trip."""
    pipe = connection.pipeline(transaction=False)
    if add_events(pipe, events):
        pipe.execute()


def status_event(episode_id: str, status: str, error: str | None = None) -> EpisodeEvent:
    return EpisodeEvent(episode_id=episode_id, status=status, at=time.time(), error=error)


async def read_events(
    connection: aioredis.Redis, project_id: uuid.UUID, last_id: str, block_ms: int, count: int = 100
) -> list[tuple[str, bytes]]:
    """Entries after last_id ("$" = only new ones), waiting up to block_ms for the first."""
    reply = cast(
        "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
        await connection.xread({stream_key(project_id): last_id}, count=count, block=block_ms),
    )
    entries: list[tuple[str, bytes]] = []
    for _stream, items in reply or []:
        for entry_id, fields in items:
            entries.append((entry_id.decode(), fields[b"data"]))
    return entries


async def delete_stream(connection: aioredis.Redis, project_id: uuid.UUID) -> None:
    await connection.delete(stream_key(project_id))


async def last_event_id(connection: aioredis.Redis, project_id: uuid.UUID) -> str:
    """The id of the newest entry, or 0-0 for an empty stream."""
    newest = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]", await connection.xrevrange(stream_key(project_id), count=1)
    )
    return newest[0][0].decode() if newest else "0-0"


async def read_range(
    connection: aioredis.Redis, project_id: uuid.UUID, after: str, until: str, count: int
) -> list[tuple[str, bytes]]:
    """Up to `count` entries with ids in (after, until], oldest first."""
    items = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        await connection.xrange(stream_key(project_id), min=f"({after}", max=until, count=count),
    )
    return [(entry_id.decode(), fields[b"data"]) for entry_id, fields in items]
