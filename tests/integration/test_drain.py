"""A job absorbs the small jobs waiting behind it: one pass for many single-episode jobs,
each episode still claimed, written and reported exactly once."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import msgspec
import psycopg
import pytest
import redis
from rq.job import Job

from service.settings import Settings, load_settings
from service.stores import episode_status
from service.stores.events import stream_key
from service.stores.queue import IngestQueue, new_job_id
from service.stores.redis import QUEUE_NAME
from tests.support.client import Client, graph_counts
from tests.support.metrics import sample
from tests.support.processes import ApiLauncher, RunningApi, WorkerLauncher
from tests.support.stack import local_environ
from worker.context import open_context
from worker.metrics import WorkerMetrics
from worker.reconciler import reconcile_once

DRAIN_DB = 7  # a queue of its own: other suites use 0, 3-6 and 9-14
QUEUE_KEY = f"rq:queue:{QUEUE_NAME}"


def _redis(settings: Settings, db: str) -> redis.Redis:
    return redis.Redis(
        host=settings.redis_host, port=settings.redis_port, password=settings.redis_password, db=int(db)
    )


@pytest.mark.parametrize("isolated_db", [DRAIN_DB], indirect=True)
def test_waiting_single_episode_jobs_are_drained_in_one_pass(
    isolated_db: str,
    tmp_path: Path,
    settings: Settings,
    running_api: ApiLauncher,
    running_worker: WorkerLauncher,
) -> None:
    connection = _redis(settings, isolated_db)
    with running_api(tmp_path / "api.log", REDIS_DB=isolated_db) as own_api:
        client = Client(own_api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        ids = []
        for n in range(40):  # one at a time: an idle API writes (and queues) each on its own
            response = client.post_episode(project, f"Drain {n}: Ada{n} Lovelace met Alan{n % 5} Turing.")
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        assert connection.llen(QUEUE_KEY) == 40
        with running_worker(tmp_path / "worker.log", REDIS_DB=isolated_db) as worker:
            client.wait_all(project, "completed", 40)
            metrics = httpx.get(worker.metrics_url).text
        # The first job absorbed the 39 waiting behind it: one job ran, none is left behind.
        assert sample(metrics, "memstack_jobs_total", task="ingest_episodes", status="succeeded") == 1
        assert connection.llen(QUEUE_KEY) == 0
        assert connection.keys("rq:job:ingest-*") == []
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], connection.xrange(stream_key(project)))
        seen: dict[str, list[str]] = defaultdict(list)
        for _, fields in entries:
            event = msgspec.json.decode(fields[b"data"])
            seen[event["episode_id"]].append(event["status"])
        assert {i: seen[i] for i in ids} == {i: ["queued", "processing", "completed"] for i in ids}
        assert graph_counts(settings, project)["episodes"] == 40
    connection.close()


@pytest.fixture
def project_rows(settings: Settings, api: RunningApi) -> Iterator[tuple[psycopg.Connection, str]]:
    client = Client(api.base_url, settings.memstack_bootstrap_api_key)
    project = client.create_project()
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        yield conn, project
        conn.execute("DELETE FROM episodes WHERE project_id = %s", (project,))


def _rows(conn: psycopg.Connection, project: str, job_id: str, *statuses: str) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in statuses]
    conn.execute(
        "INSERT INTO episodes (id, project_id, content, status, job_id)"
        " SELECT unnest(%s::uuid[]), %s, 'x', unnest(%s::text[]), %s",
        (ids, project, list(statuses), job_id),
    )
    return ids


def test_absorb_takes_whole_idle_jobs_that_fit(project_rows: tuple[psycopg.Connection, str]) -> None:
    conn, project = project_rows
    own, small, busy, large, empty = (new_job_id() for _ in range(5))
    own_rows = _rows(conn, project, own, "queued")
    small_rows = _rows(conn, project, small, "queued", "queued")
    _rows(conn, project, busy, "queued", "processing")  # a retry in flight: left alone
    large_rows = _rows(conn, project, large, "queued", "queued", "queued")
    claimed = episode_status.claim(conn, own, own_rows)
    absorbed, emptied = episode_status.absorb(conn, own, [small, busy, large, empty], room=4)
    assert sorted(e.id for e in absorbed) == sorted(small_rows)
    assert emptied == [small, empty]  # `large` (3) no longer fits in the 2 left
    assert [e.id for e in claimed] == own_rows
    # The absorbed job now owns nothing; the absorbing job's retry claims its own and those.
    assert episode_status.claim(conn, small, small_rows) == []
    retried = episode_status.claim(conn, own, own_rows)
    assert sorted(e.id for e in retried) == sorted(own_rows + small_rows)
    assert {e.attempts for e in retried} == {2}
    # The job left alone still claims its rows.
    assert sorted(e.id for e in episode_status.claim(conn, large, large_rows)) == sorted(large_rows)


@pytest.mark.parametrize("isolated_db", [DRAIN_DB], indirect=True)
def test_drop_waiting_removes_only_jobs_still_in_the_queue(isolated_db: str, settings: Settings) -> None:
    connection = _redis(settings, isolated_db)
    queue = IngestQueue(settings, connection)
    jobs = [queue.enqueue_blocking([str(uuid.uuid4())], job_id=new_job_id()) for _ in range(3)]
    assert queue.waiting_blocking(10) == jobs
    assert queue.drop_waiting_blocking([jobs[0], jobs[2], new_job_id()]) == 2
    assert queue.waiting_blocking(10) == [jobs[1]]
    assert [bool(connection.exists(f"rq:job:{j}")) for j in jobs] == [False, True, False]
    connection.close()


@pytest.mark.parametrize("isolated_db", [DRAIN_DB], indirect=True)
def test_reconciler_requeues_orphans_under_a_job_that_owns_them(
    isolated_db: str, project_rows: tuple[psycopg.Connection, str]
) -> None:
    """Rows name the new job before it is queued, so the job claims them (claims go by job)."""
    conn, project = project_rows
    settings = load_settings(local_environ(REDIS_DB=isolated_db), dotenv=None)
    orphans = _rows(conn, project, new_job_id(), "queued", "processing")  # their job never existed
    exhausted = _rows(conn, project, new_job_id(), "processing")
    conn.execute(
        "UPDATE episodes SET updated_at = now() - interval '1 hour', attempts = 1 WHERE id = ANY(%s)",
        (orphans,),
    )
    conn.execute(
        "UPDATE episodes SET updated_at = now() - interval '1 hour', attempts = %s WHERE id = ANY(%s)",
        (settings.job_max_retries + 1, exhausted),
    )
    connection = _redis(settings, isolated_db)
    ctx = open_context(settings, connection, WorkerMetrics())
    try:
        deadline = time.monotonic() + 30
        while reconcile_once(ctx, ctx.queue) == (0, 0):  # another worker's round holds the lock
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        ctx.close()
    rows = conn.execute(
        "SELECT id, status, job_id FROM episodes WHERE id = ANY(%s)", (orphans + exhausted,)
    ).fetchall()
    state = {row[0]: (row[1], row[2]) for row in rows}
    assert state[exhausted[0]][0] == "failed"
    jobs = {state[i][1] for i in orphans}
    assert [state[i][0] for i in orphans] == ["queued", "queued"]
    assert len(jobs) == 1
    (job_id,) = jobs
    # Queued after the rows named it; the chunk may also hold other stale rows of this database.
    check = _redis(settings, isolated_db)
    assert job_id in IngestQueue(settings, check).waiting_blocking(1000)
    assert {str(i) for i in orphans} <= set(Job.fetch(job_id, connection=check).args[0])
    check.close()
