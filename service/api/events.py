"""Server-Sent Events of episode status changes, resumable with Last-Event-ID."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import redis.asyncio as aioredis
from litestar import Controller, get
from litestar.exceptions import ClientException
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from loguru import logger
from redis.exceptions import RedisError

from service.api.deps import Caller, Metrics, Pool, Redis
from service.api.projects import project_of
from service.observability.metrics import ApiMetrics
from service.stores.events import last_event_id, read_events

# Well under common proxy read timeouts (ingress-nginx defaults to 60 s).
HEARTBEAT_SECONDS = 15
RECONNECT_MILLISECONDS = 3000
_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})\Z", re.ASCII)
_MAX_ID_PART = 2**64 - 1  # a Redis stream id is two unsigned 64-bit numbers
LAST_EVENT_ID = "Last-Event-ID"


def resume_point(header: str | None) -> str | None:
    """The stream id to resume after, or None for "from now"; a bad id is a 400 naming the header
    (a stream opened on it would end at once, and an EventSource would reconnect with it forever)."""
    if header is None or not header.strip():
        return None
    match = _STREAM_ID.match(header.strip())
    if match is None or int(match[1]) > _MAX_ID_PART or int(match[2]) > _MAX_ID_PART:
        raise ClientException(
            f"Invalid {LAST_EVENT_ID}",
            extra=[
                {
                    "field": LAST_EVENT_ID,
                    "message": "Expected an event id sent by this stream (<milliseconds>-<sequence>)",
                    "source": "header",
                }
            ],
        )
    return f"{int(match[1])}-{int(match[2])}"


async def _status_stream(
    redis: aioredis.Redis, metrics: ApiMetrics, project_id: uuid.UUID, resume_after: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    metrics.sse_active.inc()
    try:
        # Resolve "from now" to a concrete id once, so nothing slips between two reads.
        last = resume_after or await last_event_id(redis, project_id)
        yield ServerSentEventMessage(data=None, comment="connected", retry=RECONNECT_MILLISECONDS)
        while True:
            entries = await read_events(redis, project_id, last, block_ms=HEARTBEAT_SECONDS * 1000)
            if not entries:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
                continue
            for entry_id, data in entries:
                last = entry_id
                yield ServerSentEventMessage(id=entry_id, event="episode.status", data=data.decode())
                metrics.sse_sent.inc()
    except RedisError as exc:
        metrics.sse_errors.inc()
        logger.warning(
            "event stream for {project} ended: {error}", project=project_id, error=type(exc).__name__
        )
    finally:
        metrics.sse_active.dec()


class EventController(Controller):
    path = "/projects/{project_id:uuid}/events"
    tags = ["events"]  # noqa: RUF012

    @get(
        "/",
        summary="Server-Sent Events of episode status changes",
        description="Each event has the stream id as `id`; reconnect with `Last-Event-ID` to resume without "
        f"loss or repeats. A heartbeat comment is sent every {HEARTBEAT_SECONDS} s.",
    )
    async def stream_events(
        self,
        project_id: FromPath[uuid.UUID],
        principal: Caller,
        pool: Pool,
        redis: Redis,
        metrics: Metrics,
        last_event_id_header: Annotated[
            str | None,
            HeaderParameter(
                name=LAST_EVENT_ID,
                description="Resume after this event id; an id this stream never sent is a 400.",
            ),
        ] = None,
    ) -> ServerSentEvent:
        resume = resume_point(last_event_id_header)
        await project_of(pool, principal, project_id)
        return ServerSentEvent(
            _status_stream(redis, metrics, project_id, resume),
            headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
        )
