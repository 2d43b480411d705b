"""Many SSE clients of one real API process: one reader per project fans out to all of them."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from typing import cast

import httpx
import pytest

from service.settings import Settings
from service.stores.events import stream_key
from service.stores.redis import create_sync_redis
from tests.support.client import Client
from tests.support.metrics import sample
from tests.support.processes import RunningApi, RunningWorker
from tests.support.sockets import connections_to

GUARD_SECONDS = 120  # only against a hang; nothing here is timed


@pytest.fixture(scope="module")
def client(api: RunningApi, settings: Settings) -> Client:
    return Client(api.base_url, settings.memstack_bootstrap_api_key)


async def follow(
    http: httpx.AsyncClient,
    project: str,
    joined: asyncio.Event,
    done: asyncio.Event,
    last_event_id: str | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """(id, event) pairs until `done` is set and the stream has been quiet for a heartbeat."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    seen: list[tuple[str, dict[str, str]]] = []
    async with http.stream("GET", f"/api/v1/projects/{project}/events", headers=headers) as stream:
        assert stream.status_code == 200
        current = ""
        lines = stream.aiter_lines()
        while True:
            try:
                line = await asyncio.wait_for(anext(lines), 2 if done.is_set() else GUARD_SECONDS)
            except TimeoutError:
                return seen
            if line.startswith(": connected"):
                joined.set()
            elif line.startswith("id: "):
                current = line[4:]
            elif line.startswith("data: "):
                seen.append((current, json.loads(line[6:])))


def http_client(api: RunningApi, client: Client) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    return httpx.AsyncClient(
        base_url=api.base_url, headers=dict(client.http.headers), timeout=GUARD_SECONDS, limits=limits
    )


def readers(api: RunningApi) -> float:
    return sample(httpx.get(api.metrics_url).text, "sse_readers_active")


def test_every_client_gets_every_event_in_order(
    api: RunningApi, client: Client, worker: RunningWorker
) -> None:
    project = client.create_project()

    async def main() -> list[list[tuple[str, dict[str, str]]]]:
        async with http_client(api, client) as http:
            joined = [asyncio.Event() for _ in range(40)]
            done = asyncio.Event()
            tasks = [asyncio.create_task(follow(http, project, j, done)) for j in joined]
            await asyncio.wait_for(asyncio.gather(*(j.wait() for j in joined)), GUARD_SECONDS)
            assert readers(api) == 1
            ids = [
                (await asyncio.to_thread(client.post_episode, project, f"Run {n}: Ada met Bob.")).json()["id"]
                for n in range(5)
            ]
            await asyncio.to_thread(client.wait_all, project, "completed", len(ids))
            done.set()
            return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert all(result == results[0] for result in results)
    by_episode: dict[str, list[str]] = {}
    for _, event in results[0]:
        by_episode.setdefault(event["episode_id"], []).append(event["status"])
    assert list(by_episode.values()) == [["queued", "processing", "completed"]] * 5
    event_ids = [i for i, _ in results[0]]
    assert event_ids == sorted(event_ids, key=lambda i: tuple(map(int, i.split("-"))))
    # Every stream closed: the project's reader stops (at once, or when its blocked read returns).
    deadline = time.monotonic() + GUARD_SECONDS
    while readers(api) != 0:
        assert time.monotonic() < deadline, "the reader never stopped"
        time.sleep(0.1)


def test_resume_hands_over_from_catch_up_to_live_without_gap_or_repeat(
    api: RunningApi, client: Client, settings: Settings
) -> None:
    project = client.create_project()
    redis = create_sync_redis(settings)

    def append(count: int) -> list[str]:
        ids = []
        for n in range(count):
            event = {"episode_id": str(uuid.uuid4()), "status": "queued", "at": float(n)}
            ids.append(cast(bytes, redis.xadd(stream_key(project), {"data": json.dumps(event)})).decode())
        return ids

    try:
        history = append(300)

        async def main() -> tuple[list[str], list[str]]:
            async with http_client(api, client) as http:
                live_joined, resumed_joined, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
                live = asyncio.create_task(follow(http, project, live_joined, done))
                await asyncio.wait_for(live_joined.wait(), GUARD_SECONDS)  # the reader runs
                resumer = asyncio.create_task(follow(http, project, resumed_joined, done, history[49]))
                writer = threading.Thread(target=append, args=(300,))  # while it catches up
                writer.start()
                await asyncio.to_thread(writer.join)
                done.set()
                return [i for i, _ in await live], [i for i, _ in await resumer]

        live_ids, resumed_ids = asyncio.run(main())
        everything = [
            i.decode() for i, _ in cast(list[tuple[bytes, object]], redis.xrange(stream_key(project)))
        ]
        assert resumed_ids == everything[50:]
        assert live_ids == everything[300:]
    finally:
        redis.delete(stream_key(project))
        redis.close()


def test_redis_connections_do_not_grow_with_streams(
    api: RunningApi, client: Client, settings: Settings
) -> None:
    project = client.create_project()
    pid = api.process.pid

    async def hold(count: int) -> int:
        async with http_client(api, client) as http:
            joined = [asyncio.Event() for _ in range(count)]
            done = asyncio.Event()
            tasks = [asyncio.create_task(follow(http, project, j, done)) for j in joined]
            await asyncio.wait_for(asyncio.gather(*(j.wait() for j in joined)), GUARD_SECONDS)
            connections = connections_to(pid, settings.redis_port)
            done.set()
            await asyncio.gather(*tasks)
            return connections

    few = asyncio.run(hold(10))
    many = asyncio.run(hold(300))
    assert many <= few + 2, (few, many)


def test_a_client_that_stops_reading_is_cut_off_and_the_others_get_everything(
    api: RunningApi, client: Client, settings: Settings
) -> None:
    """Its socket fills, uvicorn's send waits, and its backlog passes the budget (1 MiB): it is
    dropped from the fan-out at once, while a client reading the same project receives every
    entry. When it reads again it gets what was already buffered, in order, then the end of
    the stream (counted in sse_errors_total, logged), and resumes with its last id."""
    project = client.create_project()
    redis = create_sync_redis(settings)
    port = int(api.base_url.rsplit(":", 1)[1])

    def errors() -> float:
        return sample(httpx.get(api.metrics_url).text, "sse_errors_total")

    errors_before = errors()
    pad = "x" * 200
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(GUARD_SECONDS)
    try:
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(
            f"GET /api/v1/projects/{project}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {client.http.headers['Authorization']}\r\n\r\n".encode()
        )
        received = b""
        while b": connected" not in received:  # then it reads nothing until the end
            chunk = stalled.recv(65536)
            assert chunk, received
            received += chunk

        async def main() -> list[str]:
            async with http_client(api, client) as http:
                joined, done = asyncio.Event(), asyncio.Event()
                reader = asyncio.create_task(follow(http, project, joined, done))
                await asyncio.wait_for(joined.wait(), GUARD_SECONDS)
                # ~9 MB in all, more than the socket buffers and the budget together, at a pace
                # the reading client keeps up with (a page of 1,000 is ~0.2 MB)
                for batch in range(40):
                    pipe = redis.pipeline(transaction=False)
                    for n in range(batch * 1000, (batch + 1) * 1000):
                        pipe.xadd(stream_key(project), {"data": json.dumps({"n": n, "pad": pad})})
                    await asyncio.to_thread(pipe.execute)
                    await asyncio.sleep(0.05)
                done.set()
                return [i for i, _ in await reader]

        followed = asyncio.run(main())
        everything = [
            i.decode() for i, _ in cast(list[tuple[bytes, object]], redis.xrange(stream_key(project)))
        ]
        assert followed == everything
        while not received.endswith(b"0\r\n\r\n"):  # the last chunk: the server ended the stream
            chunk = stalled.recv(1 << 20)
            assert chunk, "the connection closed before the stream ended"
            received += chunk
        got = [m.decode() for m in re.findall(rb"\nid: (\d+-\d+)\r?\n", received)]
        assert 0 < len(got) < len(everything)
        assert got == everything[: len(got)]  # in order, no gap, up to where it was cut off
        assert errors() == errors_before + 1
        assert "cut off: the client fell too far behind" in api.wait_for_log("cut off")
    finally:
        stalled.close()
        redis.delete(stream_key(project))
        redis.close()
