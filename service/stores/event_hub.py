"""One reader per project per process, fanning the project's event stream out to its subscribers.

The first subscriber of a project starts a reader task: it resolves "now" to the id of the
newest entry, then loops on a blocking XREAD of `memstack:events:<project>` from the last id it
saw, encodes each page of entries once (`encode`, given by the caller) and offers the page to
every subscriber of the project. The last subscriber to leave cancels it. Redis therefore sees
one blocked connection per project with listeners, however many listeners there are.

Hand-over without gap or repeat: a subscriber joins at the reader's position P, taken in the same
synchronous step that adds it to the fan-out, so every entry after P reaches it live. A resuming
subscriber (after X) first reads (X, P] from the stream itself (XRANGE, a few subscribers at a
time), then the live pages, skipping anything not after the last id it delivered.

Each subscriber's backlog is bounded in bytes: one too slow to keep up is dropped from the
fan-out (its backlog freed at once) and its iteration raises `CutOff`; it can resume with the
last id it received. A page that arrives while nothing else has (an XREAD that timed out) is a
heartbeat. A Redis error ends every subscription of the project with that error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.stores.events import last_event_id, read_events, read_range

StreamId = tuple[int, int]
Encode = Callable[[str, bytes], bytes]
"""(entry id, data) to the bytes written to a subscriber."""

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
    """One listener of one project: a bounded backlog of live pages and the catch-up before them."""

    __slots__ = (
        "_budget",
        "_ended",
        "_hub",
        "_pending",
        "_pending_bytes",
        "_waiter",
        "after",
        "project_id",
        "start",
    )

    def __init__(self, hub: EventHub, project_id: uuid.UUID, after: str | None, budget: int) -> None:
        self._hub = hub
        self.project_id = project_id
        self.after = after
        self.start = ""  # the reader's position when this subscriber joined the fan-out
        self._budget = budget
        self._pending: list[Page] = []
        self._pending_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._ended: BaseException | None = None

    def _offer(self, page: Page) -> bool:
        """Queue a live page; False (and nothing queued) when that would exceed the budget."""
        if self._pending_bytes + page.cost > self._budget:
            return False
        self._pending.append(page)
        self._pending_bytes += page.cost
        self._wake()
        return True

    def _end(self, error: BaseException) -> None:
        if self._ended is None:
            self._ended = error
            self._pending.clear()
            self._pending_bytes = 0
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _take(self) -> list[Page]:
        while not self._pending:
            if self._ended is not None:
                raise self._ended
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._ended is not None:
            raise self._ended
        pages, self._pending, self._pending_bytes = self._pending, [], 0
        return pages

    async def chunks(self) -> AsyncIterator[tuple[bytes, int]]:
        """(bytes to write, how many entries they hold): the catch-up, then the live pages; a chunk
        of no entries is a heartbeat. Ends by raising `SubscriptionEnded` or `RedisError`."""
        last = parse_id(self.start)
        if self.after is not None:
            after = parse_id(self.after)
            if after < last:
                async for entries in self._hub.catch_up(self.project_id, self.after, self.start):
                    encode = self._hub.encode
                    yield b"".join(encode(entry_id, data) for entry_id, data in entries), len(entries)
            last = max(last, after)
        while True:
            parts: list[bytes] = []
            count = 0
            for page in await self._take():
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
            if count:
                yield (parts[0] if len(parts) == 1 else b"".join(parts)), count
            else:
                yield self._hub.heartbeat, 0


class _Reader:
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


class EventHub:
    """The process's fan-out of per-project event streams; `aclose` on shutdown."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        encode: Encode,
        heartbeat: bytes,
        block_ms: int = 15_000,
        read_count: int = 1000,
        budget_bytes: int = 1 << 20,
        catch_up_page: int = 500,
        catch_up_concurrency: int = 4,
    ) -> None:
        self._redis = redis
        self.encode = encode
        self.heartbeat = heartbeat
        self._heartbeat_page = Page((), (), heartbeat)
        self._block_ms = block_ms
        self._read_count = read_count
        self._budget = budget_bytes
        self._catch_up_page = catch_up_page
        self._catch_up_slots = asyncio.Semaphore(catch_up_concurrency)
        self._readers: dict[uuid.UUID, _Reader] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def reader_count(self) -> int:
        """Readers running (one per project with subscribers)."""
        return len(self._tasks)

    def subscriber_count(self, project_id: uuid.UUID) -> int:
        reader = self._readers.get(project_id)
        return len(reader.subscribers) if reader else 0

    @asynccontextmanager
    async def subscribe(self, project_id: uuid.UUID, after: str | None) -> AsyncIterator[Subscription]:
        """Join the project's fan-out; `after` is the id to resume after (None: from now). On entry
        "now" is resolved, so every entry appended afterwards is delivered."""
        if self._closed:
            raise HubClosed
        reader = self._readers.get(project_id)
        if reader is None:
            reader = self._readers[project_id] = _Reader(project_id)
            task = asyncio.create_task(self._run(reader), name=f"events-{project_id}")
            reader.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        subscription = Subscription(self, project_id, after, self._budget)
        reader.subscribers[subscription] = None
        try:
            if reader.ready.is_set():
                subscription.start = reader.position
            else:
                await reader.ready.wait()
                subscription.start = reader.initial  # joined before the first page: sees them all
            if subscription._ended is not None:
                raise subscription._ended
            yield subscription
        finally:
            self._leave(reader, subscription)

    def _leave(self, reader: _Reader, subscription: Subscription) -> None:
        reader.subscribers.pop(subscription, None)
        subscription._end(HubClosed())
        if not reader.subscribers and self._readers.get(reader.project_id) is reader:
            del self._readers[reader.project_id]
            reader.stop()

    async def _run(self, reader: _Reader) -> None:
        try:
            reader.initial = reader.position = await last_event_id(self._redis, reader.project_id)
            reader.ready.set()
            while not reader.stopped:
                entries = await read_events(
                    self._redis, reader.project_id, reader.position, self._block_ms, self._read_count
                )
                if entries:
                    chunks = tuple(self.encode(entry_id, data) for entry_id, data in entries)
                    page = Page(tuple(parse_id(i) for i, _ in entries), chunks, b"".join(chunks))
                    reader.position = entries[-1][0]
                else:
                    page = self._heartbeat_page
                for subscription in tuple(reader.subscribers):
                    if not subscription._offer(page):
                        del reader.subscribers[subscription]
                        subscription._end(CutOff())
        except RedisError as exc:
            self._fail(reader, exc)
        finally:
            if self._readers.get(reader.project_id) is reader:
                del self._readers[reader.project_id]
            reader.ready.set()

    def _fail(self, reader: _Reader, error: BaseException) -> None:
        for subscription in tuple(reader.subscribers):
            subscription._end(error)
        reader.subscribers.clear()

    async def catch_up(
        self, project_id: uuid.UUID, after: str, until: str
    ) -> AsyncIterator[list[tuple[str, bytes]]]:
        """The entries in (after, until], page by page, a few subscribers reading at a time."""
        cursor = after
        while True:
            async with self._catch_up_slots:
                entries = await read_range(self._redis, project_id, cursor, until, self._catch_up_page)
            if entries:
                yield entries
                cursor = entries[-1][0]
            if len(entries) < self._catch_up_page:
                return

    async def aclose(self) -> None:
        """End every subscription and stop every reader; returns once no task is left."""
        self._closed = True
        for reader in tuple(self._readers.values()):
            self._fail(reader, HubClosed())
            reader.stop()
        self._readers.clear()
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
