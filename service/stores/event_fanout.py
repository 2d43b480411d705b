"""What the event hub fans out with: pages of encoded entries, one project's reader state, and
the subscriptions (`service.stores.event_hub` runs the readers; see there for the protocol)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.stores.eager import Stalled, start_eagerly

if TYPE_CHECKING:
    from service.stores.event_hub import EventHub

StreamId = tuple[int, int]
Encode = Callable[[str, bytes], bytes]
"""(entry id, data) to the bytes written to a subscriber."""
Write = Callable[[bytes], Coroutine[Any, Any, None]]
"""Writes bytes to one subscriber's client (e.g. an ASGI body message)."""

_ITEM_OVERHEAD = 64  # bytes charged per queued page on top of its payload


def parse_id(entry_id: str) -> StreamId:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class SubscriptionEnded(Exception):
    """The subscription will deliver nothing more."""


class CutOff(SubscriptionEnded):
    """The subscriber fell further behind than its budget allows."""


class HubClosed(SubscriptionEnded):
    """The process is shutting down."""


@dataclass(frozen=True, slots=True)
class Page:
    """Entries read together, encoded once and shared by every subscriber (empty: a heartbeat)."""

    ids: tuple[StreamId, ...]
    chunks: tuple[bytes, ...]
    payload: bytes

    @property
    def cost(self) -> int:
        return len(self.payload) + _ITEM_OVERHEAD


class Subscription:
    """One listener of one project: live pages pushed to its writer, or queued while it is busy.

    The subscriber's own task runs `deliver(write)`: the catch-up, then whatever was queued. Once
    it has caught up with the reader it waits, and the reader writes each new page straight to
    `write` in its own step (`start_eagerly`). A write that has to wait (a full socket buffer)
    goes back to the subscriber's task, which finishes it and drains the queue before the next
    direct write: pages stay in order, and nobody else waits for a slow stream.
    """

    __slots__ = (
        "_budget",
        "_direct",
        "_ended",
        "_hub",
        "_pending",
        "_pending_bytes",
        "_reader",
        "_stalled",
        "_waiter",
        "after",
        "start",
    )

    def __init__(self, hub: EventHub, reader: Reader, after: str | None, budget: int) -> None:
        self._hub = hub
        self._reader = reader
        self.after = after
        self.start = ""  # the reader's position when this subscriber joined the fan-out
        self._budget = budget
        self._pending: list[Page] = []
        self._pending_bytes = 0
        self._direct: Write | None = None  # set while the reader may write to it directly
        self._stalled: tuple[Stalled, int] | None = None  # a direct write that had to wait
        self._waiter: asyncio.Future[None] | None = None
        self._ended: BaseException | None = None

    @property
    def project_id(self) -> uuid.UUID:
        return self._reader.project_id

    @property
    def ended(self) -> BaseException | None:
        """Why the subscription ended, once it has."""
        return self._ended

    def push(self, page: Page) -> bool | None:
        """A live page from the reader: True if written now, None if queued or handed to the
        subscriber's task, False (nothing queued) if the backlog would exceed the budget."""
        write = self._direct
        if write is None:
            return None if self._offer(page) else False
        try:
            stalled = start_eagerly(write(page.payload))
        except Exception as exc:  # the writer failed: its stream ends with that error
            self.end(exc)
            return None
        if stalled is None:
            return True
        self._direct = None
        self._stalled = (stalled, len(page.ids))
        self._wake()
        return None

    def _offer(self, page: Page) -> bool:
        """Queue a live page; False (and nothing queued) when that would exceed the budget."""
        if self._pending_bytes + page.cost > self._budget:
            return False
        self._pending.append(page)
        self._pending_bytes += page.cost
        self._wake()
        return True

    def end(self, error: BaseException) -> None:
        if self._ended is None:
            self._ended = error
            self._direct = None
            self._pending.clear()
            self._pending_bytes = 0
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _raise_if_ended(self) -> None:
        if self._ended is not None:
            if self._stalled is not None:
                self._stalled[0].close()
                self._stalled = None
            raise self._ended

    async def deliver(self, write: Write) -> None:
        """Write the catch-up, then every live page, with `write` (a chunk of no entries is a
        heartbeat) until the subscription ends; then raise why (`SubscriptionEnded` or a
        `RedisError`). Never returns otherwise."""
        hub = self._hub
        last = parse_id(self.start)
        if self.after is not None:
            after = parse_id(self.after)
            if after < last:
                async for entries in hub.catch_up(self.project_id, self.after, self.start):
                    self._raise_if_ended()
                    await write(b"".join(hub.encode(entry_id, data) for entry_id, data in entries))
                    hub.on_sent(len(entries))
            last = max(last, after)
        while True:
            self._raise_if_ended()
            if self._stalled is not None:
                (stalled, count), self._stalled = self._stalled, None
                await stalled
                hub.on_sent(count)
                continue
            if self._pending:
                pages, self._pending, self._pending_bytes = self._pending, [], 0
                chunk, count, last = _fresh(pages, last, hub.heartbeat)
                await write(chunk)
                hub.on_sent(count)
                continue
            # Only once the reader is past what was delivered can its pages go out unfiltered.
            if parse_id(self._reader.position or self.start) >= last:
                self._direct = write
            await self._wait()


def _fresh(pages: list[Page], last: StreamId, heartbeat: bytes) -> tuple[bytes, int, StreamId]:
    """(bytes to write, entries in them, new last id) of the queued pages' entries after `last`."""
    parts: list[bytes] = []
    count = 0
    for page in pages:
        if not page.ids:
            continue
        if page.ids[0] > last:
            parts.append(page.payload)
            count += len(page.ids)
        else:  # only when resuming from an id the reader had not reached yet
            fresh = [chunk for i, chunk in zip(page.ids, page.chunks, strict=True) if i > last]
            parts.extend(fresh)
            count += len(fresh)
        last = max(last, page.ids[-1])
    if not count:
        return heartbeat, 0, last
    return (parts[0] if len(parts) == 1 else b"".join(parts)), count, last


class Reader:
    """One project's reader task, its position in the stream and its subscribers."""

    __slots__ = ("initial", "position", "project_id", "ready", "stopped", "subscribers", "task")

    def __init__(self, project_id: uuid.UUID) -> None:
        self.project_id = project_id
        self.subscribers: dict[Subscription, None] = {}  # insertion-ordered set
        self.ready = asyncio.Event()
        self.initial = ""  # the "now" the reader started from
        self.position = ""  # the id of the last entry offered to the subscribers
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    def stop(self) -> None:
        # The flag too: a cancel that lands as redis-py starts a command can be absorbed by its
        # read timeout (Python 3.11), and the reader must then stop when that read returns.
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
