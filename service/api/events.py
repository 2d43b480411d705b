"""Server-Sent Events of episode status changes, resumable with Last-Event-ID.

Every stream of a project is fed by the process's one reader of that project
(`service.stores.event_hub`); this module owns the wire format and the metrics."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import redis.asyncio as aioredis
from litestar import Controller, get
from litestar.exceptions import ClientException
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEventMessage, Stream
from loguru import logger
from redis.exceptions import RedisError

from service.api.deps import Caller, Events, Metrics, Pool
from service.api.projects import project_of
from service.observability.metrics import ApiMetrics
from service.stores.event_hub import CutOff, EventHub, HubClosed

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


def sse_event(entry_id: str, data: bytes) -> bytes:
    """One stream entry as an SSE message: encoded once per entry by the hub, shared by every client."""
    return ServerSentEventMessage(id=entry_id, event="episode.status", data=data.decode()).encode()


CONNECTED = ServerSentEventMessage(data=None, comment="connected", retry=RECONNECT_MILLISECONDS).encode()
HEARTBEAT = ServerSentEventMessage(data=None, comment="heartbeat").encode()
SSE_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache", "Connection": "keep-alive"}


def create_event_hub(redis: aioredis.Redis) -> EventHub:
    """The process's fan-out (opened by the lifespan): a reader per project, heartbeats every 15 s."""
    return EventHub(redis, encode=sse_event, heartbeat=HEARTBEAT, block_ms=HEARTBEAT_SECONDS * 1000)


async def _status_stream(
    hub: EventHub, metrics: ApiMetrics, project_id: uuid.UUID, resume_after: str | None
) -> AsyncIterator[bytes]:
    metrics.sse_active.inc()
    try:
        # Joining resolves "from now" to a concrete id, so nothing slips between "connected" and the events.
        async with hub.subscribe(project_id, resume_after) as subscription:
            yield CONNECTED
            async for chunk, count in subscription.chunks():
                yield chunk
                if count:
                    metrics.sse_sent.inc(count)
    except RedisError as exc:
        metrics.sse_errors.inc()
        logger.warning(
            "event stream for {project} ended: {error}", project=project_id, error=type(exc).__name__
        )
    except CutOff:
        # Its backlog is already freed; the client resumes with the last id it received.
        metrics.sse_errors.inc()
        logger.warning(
            "event stream for {project} cut off: the client fell too far behind", project=project_id
        )
    except HubClosed:
        pass
    finally:
        metrics.sse_active.dec()


class EventController(Controller):
    path = "/projects/{project_id:uuid}/events"
    tags = ["events"]  # noqa: RUF012

    @get(
        "/",
        media_type="text/event-stream",
        summary="Server-Sent Events of episode status changes",
        description="Each event has the stream id as `id`; reconnect with `Last-Event-ID` to resume without "
        f"loss or repeats. A heartbeat comment is sent every {HEARTBEAT_SECONDS} s.",
    )
    async def stream_events(
        self,
        project_id: FromPath[uuid.UUID],
        principal: Caller,
        pool: Pool,
        event_hub: Events,
        metrics: Metrics,
        last_event_id_header: Annotated[
            str | None,
            HeaderParameter(
                name=LAST_EVENT_ID,
                description="Resume after this event id; an id this stream never sent is a 400.",
            ),
        ] = None,
    ) -> Stream:
        resume = resume_point(last_event_id_header)
        await project_of(pool, principal, project_id)
        return Stream(
            _status_stream(event_hub, metrics, project_id, resume),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
