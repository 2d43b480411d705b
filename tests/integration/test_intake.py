"""Group commit of accepted episodes, against the real PostgreSQL and Redis.

Requests that arrive together are written together: these tests submit many at once to one
`EpisodeIntake` and check that each gets exactly its own answer — its rows, its replays, its
refusal — whatever else shares its batch, and that every accepted episode is on a queued job.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
import pytest
import redis
from prometheus_client import CollectorRegistry
from rq.job import Job

from service.memory.accept import EpisodeIntake, IntakeDeps
from service.memory.errors import NotFound, Unavailable
from service.observability.metrics import ApiMetrics
from service.settings import Settings
from service.stores import tenancy
from service.stores.episodes import NewEpisode
from service.stores.postgres import create_pool
from service.stores.queue import IngestQueue
from service.stores.redis import create_async_redis, create_sync_redis
from tests.support.stack import free_port

T = TypeVar("T")
REDIS_DB = 10  # a queue of its own, so no worker of another suite takes these jobs


@pytest.fixture
def own_queue(settings: Settings) -> Iterator[Settings]:
    """The settings with a Redis database of this module's, emptied before and after."""
    connection = redis.Redis(
        host=settings.redis_host, port=settings.redis_port, password=settings.redis_password, db=REDIS_DB
    )
    connection.flushdb()
    try:
        yield msgspec.structs.replace(settings, redis_db=REDIS_DB)
    finally:
        connection.flushdb()
        connection.close()


def episode(text: str, key: str | None = None) -> NewEpisode:
    return NewEpisode(content=text, source="test", reference_time=None, metadata={}, idempotency_key=key)


@asynccontextmanager
async def intake_for(settings: Settings) -> AsyncIterator[tuple[EpisodeIntake, IngestQueue, Any]]:
    pool = create_pool(settings)
    await pool.open()
    redis = create_async_redis(settings)
    sync_redis = create_sync_redis(settings)
    queue = IngestQueue(settings, sync_redis, redis)
    intake = EpisodeIntake(IntakeDeps(pool, queue, ApiMetrics(CollectorRegistry())))
    try:
        yield intake, queue, pool
    finally:
        await intake.aclose()
        await redis.aclose()
        sync_redis.close()
        await pool.close()


async def tenant_with_projects(pool: Any, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    async with pool.connection() as conn:
        tenant = await tenancy.create_tenant(conn, f"intake-{uuid.uuid4().hex[:10]}")
        assert tenant is not None
        projects = []
        for n in range(count):
            project = await tenancy.create_project(conn, tenant.id, f"p{n}", "")
            assert project is not None
            projects.append(project.id)
    return tenant.id, projects


async def jobs_of(pool: Any, episode_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute("SELECT id, job_id FROM episodes WHERE id = ANY(%s)", (episode_ids,))
        ).fetchall()
    return {row[0]: row[1] for row in rows}


async def settle(calls: Sequence[Awaitable[T]]) -> list[T | BaseException]:
    return await asyncio.gather(*calls, return_exceptions=True)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_concurrent_requests_share_batches_and_each_gets_its_own_rows(own_queue: Settings) -> None:
    settings = own_queue

    async def scenario() -> None:
        async with intake_for(settings) as (intake, queue, pool):
            tenant, projects = await tenant_with_projects(pool, 3)
            calls = [
                intake.accept(
                    tenant, projects[n % 3], [episode(f"request {n} item {i}") for i in range(n % 4 + 1)]
                )
                for n in range(60)
            ]
            answers = await settle(calls)
            accepted: list[uuid.UUID] = []
            for n, answer in enumerate(answers):
                assert not isinstance(answer, BaseException), answer
                inserted, duplicates = answer
                assert duplicates == []
                assert [row.content for row in inserted] == [
                    f"request {n} item {i}" for i in range(n % 4 + 1)
                ]
                assert {row.project_id for row in inserted} == {projects[n % 3]}
                assert all(row.status == "queued" for row in inserted)
                accepted += [row.id for row in inserted]
            assert len(set(accepted)) == len(accepted) == sum(n % 4 + 1 for n in range(60))
            job_ids = await jobs_of(pool, accepted)
            assert set(job_ids) == set(accepted)
            distinct = sorted(set(job_ids.values()))
            assert len(distinct) < 60, "concurrent requests were not batched"
            jobs = Job.fetch_many(distinct, connection=queue._queue.connection)
            queued = {i for job in jobs if job is not None for i in job.args[0]}
            assert queued == {str(i) for i in accepted}
            queue.discard_blocking(distinct)

    run(scenario)


def test_idempotency_keys_within_and_across_batches(own_queue: Settings) -> None:
    settings = own_queue

    async def scenario() -> None:
        async with intake_for(settings) as (intake, queue, pool):
            tenant, (project, other) = await tenant_with_projects(pool, 2)
            # The same key ten times at once: one row, nine replays of it.
            answers = await settle(
                [intake.accept(tenant, project, [episode(f"try {n}", "k1")]) for n in range(10)]
            )
            rows = [a for a in answers if not isinstance(a, BaseException)]
            assert len(rows) == 10
            firsts = [inserted[0] for inserted, _ in rows if inserted]
            replays = [duplicates[0] for inserted, duplicates in rows if not inserted]
            assert len(firsts) == 1
            assert len(replays) == 9
            assert {r.id for r in replays} == {firsts[0].id}
            # Later, the same key again in that project replays; in another project it is new.
            again, on_other = await settle(
                [
                    intake.accept(tenant, project, [episode("late", "k1")]),
                    intake.accept(tenant, other, [episode("x", "k1")]),
                ]
            )
            assert not isinstance(again, BaseException)
            assert not isinstance(on_other, BaseException)
            assert again[0] == []
            assert [r.id for r in again[1]] == [firsts[0].id]
            assert len(on_other[0]) == 1
            assert on_other[0][0].id != firsts[0].id
            queue.discard_blocking(
                sorted(set((await jobs_of(pool, [firsts[0].id, on_other[0][0].id])).values()))
            )

    run(scenario)


def test_a_foreign_or_missing_project_fails_alone(own_queue: Settings) -> None:
    settings = own_queue

    async def scenario() -> None:
        async with intake_for(settings) as (intake, queue, pool):
            tenant, (project,) = await tenant_with_projects(pool, 1)
            stranger, (theirs,) = await tenant_with_projects(pool, 1)
            calls = [
                intake.accept(tenant, project, [episode("mine")]),
                intake.accept(tenant, theirs, [episode("not mine")]),  # another tenant's project
                intake.accept(tenant, uuid.uuid4(), [episode("nowhere")]),
                intake.accept(stranger, theirs, [episode("theirs", "k")]),
                intake.accept(tenant, theirs, [episode("replay across tenants?", "k")]),
            ]
            mine, foreign, missing, their_own, sneaky = await settle(calls)
            assert isinstance(foreign, NotFound)
            assert isinstance(missing, NotFound)
            assert isinstance(sneaky, NotFound), "another tenant's idempotency key must not be replayed"
            assert not isinstance(mine, BaseException)
            assert not isinstance(their_own, BaseException)
            ids = [mine[0][0].id, their_own[0][0].id]
            async with pool.connection() as conn:
                count = await (
                    await conn.execute(
                        "SELECT count(*) FROM episodes WHERE project_id = ANY(%s)", ([project, theirs],)
                    )
                ).fetchone()
            assert count == (2,)
            queue.discard_blocking(sorted(set((await jobs_of(pool, ids)).values())))

    run(scenario)


def test_a_full_queue_refuses_the_batch_and_keeps_nothing(own_queue: Settings) -> None:
    settings = msgspec.structs.replace(own_queue, queue_max_size=1)

    async def scenario() -> None:
        async with intake_for(settings) as (intake, queue, pool):
            tenant, (project,) = await tenant_with_projects(pool, 1)
            queue._queue.connection.rpush(queue._queue.key, "a-job-waiting")
            answers = await settle([intake.accept(tenant, project, [episode(f"e{n}")]) for n in range(5)])
            assert all(isinstance(a, Unavailable) and "full" in str(a) for a in answers), answers
            assert await episode_count(pool, project) == 0

    run(scenario)


def test_an_unreachable_queue_refuses_the_batch_and_keeps_nothing(own_queue: Settings) -> None:
    async def scenario() -> None:
        async with intake_for(own_queue) as (_, _, pool):
            tenant, (project,) = await tenant_with_projects(pool, 1)
        async with intake_for(msgspec.structs.replace(own_queue, redis_port=free_port())) as (
            intake,
            _,
            pool,
        ):
            answers = await settle([intake.accept(tenant, project, [episode(f"e{n}")]) for n in range(5)])
            assert all(isinstance(a, Unavailable) and "unavailable" in str(a) for a in answers), answers
            assert await episode_count(pool, project) == 0

    run(scenario)


async def episode_count(pool: Any, project: uuid.UUID) -> int:
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM episodes WHERE project_id = %s", (project,))
        ).fetchone()
    assert row is not None
    return int(row[0])
