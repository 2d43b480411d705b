"""The event fan-out (`service.stores.event_hub`) in this process against the real Redis: one
reader per project, every subscriber gets every entry in order, the resume hand-over has no gap
and no repeat, slow subscribers are cut off, and Redis connections do not grow with subscribers."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import pytest
import redis.asyncio as aioredis

from service.settings import Settings
from service.stores.event_fanout import CutOff, HubClosed, Subscription
from service.stores.event_hub import EventHub
from service.stores.events import stream_key
from service.stores.redis import create_async_redis
from tests.support.sockets import connections_to

T = TypeVar("T")
GUARD_SECONDS = 120  # only against a hang; nothing here is timed


def encode(entry_id: str, data: bytes) -> bytes:
    return entry_id.encode() + b"\n"


def run(settings: Settings, body: Callable[[EventHub, aioredis.Redis], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        redis = create_async_redis(settings)
        hub = EventHub(redis, encode=encode, heartbeat=b"", block_ms=200, **options)
        try:
            return await asyncio.wait_for(body(hub, redis), GUARD_SECONDS)
        finally:
            await hub.aclose()
            assert hub.reader_count() == 0
            await redis.aclose()

    return asyncio.run(main())


async def append(redis: aioredis.Redis, project: uuid.UUID, count: int, pad: int = 0) -> list[str]:
    ids = []
    for n in range(count):
        entry_id = await redis.xadd(stream_key(project), {"data": f'{{"n": {n}}}'.encode() + b" " * pad})
        ids.append(entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id))
        if n % 10 == 0:
            await asyncio.sleep(0)  # let the reader and the subscribers run in between
    return ids


async def stream_ids(redis: aioredis.Redis, project: uuid.UUID) -> list[str]:
    items = cast("list[tuple[bytes, dict[bytes, bytes]]]", await redis.xrange(stream_key(project)))
    return [entry_id.decode() for entry_id, _ in items]


class _Enough(Exception):
    """Raised by a test's writer once it has seen what it waited for."""


async def collect(subscription: Subscription, until: Callable[[list[str]], bool]) -> list[str]:
    seen: list[str] = []

    async def write(chunk: bytes) -> None:
        seen.extend(chunk.decode().split())
        if until(seen):
            raise _Enough

    with pytest.raises(_Enough):
        await subscription.deliver(write)
    return seen


async def listener(
    hub: EventHub,
    project: uuid.UUID,
    after: str | None,
    joined: asyncio.Event,
    until: Callable[[list[str]], bool],
) -> list[str]:
    async with hub.subscribe(project, after) as subscription:
        joined.set()
        return await collect(subscription, until)


def spawn(coroutine: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
    return asyncio.create_task(coroutine, name=name)


@pytest.fixture
def project(settings: Settings) -> Any:
    project_id = uuid.uuid4()
    yield project_id
    redis = create_async_redis(settings)

    async def drop() -> None:
        await redis.delete(stream_key(project_id))
        await redis.aclose()

    asyncio.run(drop())


def test_many_subscribers_get_every_event_in_order(settings: Settings, project: uuid.UUID) -> None:
    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        await append(redis, project, 5)  # history that "from now" must not replay
        joined = [asyncio.Event() for _ in range(300)]
        total = 400
        tasks = [spawn(listener(hub, project, None, j, lambda s: len(s) >= total)) for j in joined]
        await asyncio.gather(*(j.wait() for j in joined))
        assert hub.reader_count() == 1
        ids = await append(redis, project, total)
        results = await asyncio.gather(*tasks)
        assert all(result == ids for result in results)

    run(settings, body)


def test_pages_are_written_by_the_reader_and_a_write_that_waits_is_finished_by_its_subscriber(
    settings: Settings, project: uuid.UUID
) -> None:
    """Caught-up subscribers are written to from the reader's own task; one whose write has to
    wait (every fifth here) gets that write finished, and the pages after it, by its own task:
    every entry in order, each counted as sent once."""
    sent: list[int] = []

    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        total = 300
        writers: dict[str, set[str]] = {"fast": set(), "waiting": set()}

        async def subscriber(kind: str, joined: asyncio.Event) -> list[str]:
            seen: list[str] = []
            writes = 0
            complete = asyncio.Event()

            async def write(chunk: bytes) -> None:
                nonlocal writes
                writes += 1
                task = asyncio.current_task()
                writers[kind].add(task.get_name() if task else "")
                if kind == "waiting" and writes % 5 == 0:
                    await asyncio.sleep(0.002)
                seen.extend(chunk.decode().split())
                if len(seen) >= total:
                    complete.set()

            async with hub.subscribe(project, None) as subscription:
                joined.set()
                delivery = spawn(subscription.deliver(write), name=f"{kind}-{id(seen)}")
                await complete.wait()
                delivery.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await delivery
            return seen

        kinds = ["fast"] * 20 + ["waiting"] * 3
        joined = [asyncio.Event() for _ in kinds]
        tasks = [spawn(subscriber(k, j)) for k, j in zip(kinds, joined, strict=True)]
        await asyncio.gather(*(j.wait() for j in joined))
        ids = await append(redis, project, total)
        assert all(r == ids for r in await asyncio.gather(*tasks))
        reader = f"events-{project}"
        assert reader in writers["fast"], writers  # written by the reader itself
        assert reader in writers["waiting"], writers
        assert any(name.startswith("waiting-") for name in writers["waiting"]), writers

    run(settings, body, on_sent=sent.append)
    assert sum(sent) == 23 * 300


def test_resume_catches_up_then_joins_live_without_gap_or_repeat(
    settings: Settings, project: uuid.UUID
) -> None:
    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        history = await append(redis, project, 300)
        live_joined = asyncio.Event()
        final = asyncio.get_running_loop().create_future()

        def done(seen: list[str]) -> bool:
            return final.done() and seen[-1:] == [final.result()]

        live = spawn(listener(hub, project, None, live_joined, done))
        await live_joined.wait()  # the reader is running: resumers hand over to it
        starts = ["0-0", history[0], history[150], history[-1], "18446744073709551615-0"]
        joined = [asyncio.Event() for _ in starts]
        resumers = [spawn(listener(hub, project, s, j, done)) for s, j in zip(starts, joined, strict=True)]
        appended = await append(redis, project, 400)  # while they catch up in pages of 7
        final.set_result(appended[-1])
        # The future id never sees anything: end it by hand once the others are done.
        seen = await asyncio.gather(live, *resumers[:-1])
        resumers[-1].cancel()
        everything = await stream_ids(redis, project)
        assert seen[0] == appended
        for start, result in zip(starts, seen[1:], strict=False):
            expected = [
                i for i in everything if tuple(map(int, i.split("-"))) > tuple(map(int, start.split("-")))
            ]
            assert result == expected, start

    run(settings, body, catch_up_page=7)


def test_a_resume_that_starts_the_reader_hands_over_cleanly(settings: Settings, project: uuid.UUID) -> None:
    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        history = await append(redis, project, 50)
        writer = spawn(append(redis, project, 300))
        target: list[str] = []

        async def resume() -> list[str]:
            async with hub.subscribe(project, history[9]) as subscription:
                ids = await writer
                target.append(ids[-1])
                return await collect(subscription, lambda s: s[-1:] == target)

        result = await resume()
        everything = await stream_ids(redis, project)
        assert result == everything[10:]

    run(settings, body, catch_up_page=5)


def test_two_projects_are_isolated(settings: Settings, project: uuid.UUID) -> None:
    other = uuid.uuid4()

    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        try:
            joined = [asyncio.Event() for _ in range(4)]
            mine = [spawn(listener(hub, project, None, j, lambda s: len(s) >= 30)) for j in joined[:2]]
            theirs = [spawn(listener(hub, other, None, j, lambda s: len(s) >= 20)) for j in joined[2:]]
            await asyncio.gather(*(j.wait() for j in joined))
            assert hub.reader_count() == 2
            ids_mine, ids_theirs = await asyncio.gather(append(redis, project, 30), append(redis, other, 20))
            assert await asyncio.gather(*mine) == [ids_mine, ids_mine]
            assert await asyncio.gather(*theirs) == [ids_theirs, ids_theirs]
        finally:
            await redis.delete(stream_key(other))

    run(settings, body)


async def eventually(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 (a condition of the hub, not an event)
        await asyncio.sleep(0.02)


def test_the_reader_stops_when_the_last_subscriber_leaves(settings: Settings, project: uuid.UUID) -> None:
    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        async with hub.subscribe(project, None), hub.subscribe(project, None):
            assert hub.reader_count() == 1
            assert hub.subscriber_count(project) == 2
        assert hub.subscriber_count(project) == 0
        await eventually(lambda: hub.reader_count() == 0)
        # A later subscriber starts a fresh reader, from the then newest entry.
        ids = await append(redis, project, 3)
        async with hub.subscribe(project, None) as subscription:
            assert subscription.start == ids[-1]
            assert hub.reader_count() == 1
        await eventually(lambda: hub.reader_count() == 0)

    run(settings, body)


def test_a_slow_subscriber_is_cut_off_without_holding_up_the_others(
    settings: Settings, project: uuid.UUID
) -> None:
    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        joined = [asyncio.Event() for _ in range(3)]
        total = 200
        fast = [spawn(listener(hub, project, None, j, lambda s: len(s) >= total)) for j in joined]
        await asyncio.gather(*(j.wait() for j in joined))
        async with hub.subscribe(project, None) as slow:
            ids = await append(redis, project, total, pad=100)
            assert await asyncio.gather(*fast) == [ids] * 3
            assert hub.subscriber_count(project) == 1 or slow.ended is not None
            with pytest.raises(CutOff):
                await collect(slow, lambda s: False)

    run(settings, body, budget_bytes=4000)


def test_redis_connections_do_not_grow_with_subscribers(settings: Settings, project: uuid.UUID) -> None:
    pid = os.getpid()

    async def hold(hub: EventHub, redis: aioredis.Redis, count: int) -> int:
        history = await append(redis, project, 20)
        joined = [asyncio.Event() for _ in range(count)]
        # Half resume from the start (each catches up from the stream), half from now.
        starts = [history[0] if n % 2 else None for n in range(count)]
        tasks = [
            spawn(listener(hub, project, s, j, lambda s: False)) for s, j in zip(starts, joined, strict=True)
        ]
        await asyncio.gather(*(j.wait() for j in joined))
        await append(redis, project, 20)
        await asyncio.sleep(0.5)
        connections = connections_to(pid, settings.redis_port)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await eventually(lambda: hub.reader_count() == 0)
        return connections

    async def body(hub: EventHub, redis: aioredis.Redis) -> tuple[int, int]:
        return await hold(hub, redis, 10), await hold(hub, redis, 1000)

    few, many = run(settings, body, catch_up_concurrency=4)
    # The reader, four catch-up readers, the appends: whatever the number of subscribers.
    assert many <= few + 4, (few, many)
    assert many < 20, many


def test_closing_the_hub_ends_every_subscription(settings: Settings, project: uuid.UUID) -> None:
    async def body(hub: EventHub, redis: aioredis.Redis) -> None:
        async with hub.subscribe(project, None) as subscription:
            await hub.aclose()
            assert hub.reader_count() == 0
            with pytest.raises(HubClosed):
                await collect(subscription, lambda s: False)
        with pytest.raises(HubClosed):
            async with hub.subscribe(project, None):
                pass

    run(settings, body)
