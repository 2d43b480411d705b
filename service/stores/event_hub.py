"""One reader per project per process, fanning the project's event stream out to its subscribers.

The first subscriber of a project starts a reader task: it resolves "now" to the id of the
newest entry, then loops on a blocking XREAD of `memstack:events:<project>` from the last id it
saw, encodes each page of entries once (`encode`, given by the caller) and hands the page to
every subscriber of the project. The last subscriber to leave cancels it. Redis therefore sees
one blocked connection per project with listeners, however many listeners there are.

Delivery is pushed: a subscriber that has caught up gets each page written by the reader itself
(its `Write`, run eagerly: no task wake-up per subscriber per page); one whose write has to wait,
or that is still catching up, gets the page queued for its own task (`Subscription.deliver`).

Hand-over without gap or repeat: a subscriber joins at the reader's position P, taken in the same
synchronous step that adds it to the fan-out, so every entry after P reaches it live. A resuming
subscriber (after X) first reads (X, P] from the stream itself (XRANGE, a few subscribers at a
time), then the live pages, skipping anything not after the last id it delivered.

Each subscriber's backlog is bounded in bytes: one too slow to keep up is dropped from the
fan-out (its backlog freed at once) and its delivery raises `CutOff`; it can resume with the
last id it received. A page that arrives while nothing else has (an XREAD that timed out) is a
heartbeat. A Redis error ends every subscription of the project with that error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.stores.event_fanout import CutOff, Encode, HubClosed, Page, Reader, Subscription, parse_id
from service.stores.events import last_event_id, read_events, read_range


class EventHub:
    """The process's fan-out of per-project event streams; `aclose` on shutdown."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        encode: Encode,
        heartbeat: bytes,
        on_sent: Callable[[int], None] = lambda count: None,
        block_ms: int = 15_000,
        read_count: int = 1000,
        budget_bytes: int = 1 << 20,
        catch_up_page: int = 500,
        catch_up_concurrency: int = 4,
    ) -> None:
        self._redis = redis
        self.encode = encode
        self.heartbeat = heartbeat
        self._on_sent = on_sent
        self._heartbeat_page = Page((), (), heartbeat)
        self._block_ms = block_ms
        self._read_count = read_count
        self._budget = budget_bytes
        self._catch_up_page = catch_up_page
        self._catch_up_slots = asyncio.Semaphore(catch_up_concurrency)
        self._readers: dict[uuid.UUID, Reader] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def on_sent(self, count: int) -> None:
        """`count` entries were written to a subscriber."""
        if count:
            self._on_sent(count)

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
            reader = self._readers[project_id] = Reader(project_id)
            task = asyncio.create_task(self._run(reader), name=f"events-{project_id}")
            reader.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        subscription = Subscription(self, reader, after, self._budget)
        reader.subscribers[subscription] = None
        try:
            if reader.ready.is_set():
                subscription.start = reader.position
            else:
                await reader.ready.wait()
                subscription.start = reader.initial  # joined before the first page: sees them all
            if subscription.ended is not None:
                raise subscription.ended
            yield subscription
        finally:
            self._leave(reader, subscription)

    def _leave(self, reader: Reader, subscription: Subscription) -> None:
        reader.subscribers.pop(subscription, None)
        subscription.end(HubClosed())
        if not reader.subscribers and self._readers.get(reader.project_id) is reader:
            del self._readers[reader.project_id]
            reader.stop()

    async def _run(self, reader: Reader) -> None:
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
                written = 0
                for subscription in tuple(reader.subscribers):
                    pushed = subscription.push(page)
                    if pushed:
                        written += 1
                    elif pushed is False:
                        del reader.subscribers[subscription]
                        subscription.end(CutOff())
                self.on_sent(written * len(page.ids))
        except RedisError as exc:
            self._fail(reader, exc)
        finally:
            if self._readers.get(reader.project_id) is reader:
                del self._readers[reader.project_id]
            reader.ready.set()

    def _fail(self, reader: Reader, error: BaseException) -> None:
        for subscription in tuple(reader.subscribers):
            subscription.end(error)
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
