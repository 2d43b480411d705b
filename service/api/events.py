"""Server-Sent Events of episode status changes, resumable with Last-Event-ID.

Every stream of a project is fed by the process's one reader of that project
(`service.stores.event_hub`); this module owns the wire format and the metrics."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Annotated

import redis.asyncio as aioredis
from litestar import Controller, get
from litestar.exceptions import ClientException
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEventMessage
from litestar.types import Receive, Scope, Send
from loguru import logger
from redis.exceptions import RedisError

from service.api.deps import Caller, Events, Metrics, Pool
from service.api.projects import project_of
from service.observability.metrics import ApiMetrics
from service.stores.event_fanout import CutOff, HubClosed, Write
from service.stores.event_hub import EventHub

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
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"x-accel-buffering", b"no"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
]


def create_event_hub(redis: aioredis.Redis, metrics: ApiMetrics) -> EventHub:
    """The process's fan-out (opened by the lifespan): a reader per project, heartbeats every 15 s."""
    return EventHub(
        redis,
        encode=sse_event,
        heartbeat=HEARTBEAT,
        on_sent=metrics.sse_sent.inc,
        block_ms=HEARTBEAT_SECONDS * 1000,
    )


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream:
    """The SSE response, an ASGI app: the headers, "connected", then whatever the subscription
    writes (the hub pushes to `send` directly) until it ends or the client goes away."""

    def __init__(
        self, hub: EventHub, metrics: ApiMetrics, project_id: uuid.UUID, resume_after: str | None
    ) -> None:
        self._hub = hub
        self._metrics = metrics
        self._project_id = project_id
        self._resume_after = resume_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        self._metrics.sse_active.inc()
        listener = asyncio.ensure_future(_disconnected(receive))
        try:
            await self._stream(write, listener)
        finally:
            listener.cancel()
            self._metrics.sse_active.dec()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, write: Write, listener: asyncio.Future[None]) -> None:
        project = self._project_id
        try:
            # Joining resolves "from now" to a concrete id: nothing slips between "connected" and the events.
            async with self._hub.subscribe(project, self._resume_after) as subscription:
                await write(CONNECTED)
                delivery = asyncio.ensure_future(subscription.deliver(write))
                try:
                    await asyncio.wait((delivery, listener), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    delivery.cancel()
                if not delivery.cancelled() and delivery.done():
                    delivery.result()  # raises why the subscription ended
        except RedisError as exc:
            self._metrics.sse_errors.inc()
            logger.warning(
                "event stream for {project} ended: {error}", project=project, error=type(exc).__name__
            )
        except CutOff:
            # Its backlog is already freed; the client resumes with the last id it received.
            self._metrics.sse_errors.inc()
            logger.warning(
                "event stream for {project} cut off: the client fell too far behind", project=project
            )
        except HubClosed:
            pass


class EventController(Controller):
    path = "/projects/{project_id:uuid}/events"
    tags = ["events"]  # noqa: RUF012

    @get(
        "/",
        media_type="text/event-stream",
        summary="Server-Sent Events of episode status changes",
        response_description="`episode.status` events (JSON data) and heartbeat comments",
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
    ) -> EventStream:
        resume = resume_point(last_event_id_header)
        await project_of(pool, principal, project_id)
        return EventStream(event_hub, metrics, project_id, resume)
