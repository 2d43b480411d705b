"""SSE fan-out: thousands of streams on one project of one API process, every event to every client.

One API process and one worker (`running_api`, `running_worker`). Client processes (raw asyncio
sockets, several processes so that the client side is not the bottleneck: their CPU use is
reported) open the streams in two steps, 100 then the rest; the benchmark posts episodes one
per request and waits until every stream has every event (queued, processing, completed each).

Reported: the fraction of events delivered; p99 from the status change (the event's `at`,
written by the worker or the API when the status changed) to its arrival at a client; API RSS
growth per stream; and the API process's own Redis connections at 100 vs all streams (the hub
keeps one reader per project, so the count must stay flat: at most 2 more connections, for
commands that happen to overlap, never one per stream). Redis
`connected_clients` is printed too but not judged: it counts every client of the shared
server (the worker, other processes), which come and go independently of this run. Where the
CPU went while the events were delivered is reported too (`tests.bench.cpu`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import redis

from service.settings import Settings, load_settings
from service.stores.redis import server_options
from tests.bench import cpu
from tests.bench.report import Row, emit, limit_row, ratio_row
from tests.support.client import Client
from tests.support.processes import running_api, running_worker
from tests.support.sockets import connections_to
from tests.support.stack import local_environ

GOAL = "4 SSE"
_AT = re.compile(rb'"at":\s*([0-9.eE+-]+)')


class _Stream(asyncio.Protocol):
    def __init__(self, connected: asyncio.Future[None], latencies: list[float]) -> None:
        self.connected = connected
        self.latencies = latencies
        self.buffer = b""
        self.events = 0
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data: "):
                match = _AT.search(line)
                if match:
                    self.latencies.append(now - float(match[1]))
                self.events += 1
            elif line.startswith(b": connected") and not self.connected.done():
                self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError("stream closed before it connected"))


async def _client(port: int, request: bytes, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    streams: list[_Stream] = []
    latencies: list[float] = []

    async def open_one() -> None:
        connected: asyncio.Future[None] = loop.create_future()
        _, protocol = await loop.create_connection(lambda: _Stream(connected, latencies), "127.0.0.1", port)
        assert protocol.transport is not None
        protocol.transport.write(request)  # type: ignore[attr-defined]
        await connected
        streams.append(protocol)

    while True:
        command, argument = await loop.run_in_executor(None, pipe.recv)
        if command == "open":
            for start in range(0, argument, 50):
                await asyncio.gather(*(open_one() for _ in range(min(50, argument - start))))
            pipe.send(len(streams))
        elif command == "expect":  # wait until every stream has `argument` events
            total, deadline = argument
            started_cpu, started = time.process_time(), time.monotonic()
            latencies.clear()
            while any(s.events < total for s in streams) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            cpu = (time.process_time() - started_cpu) / max(time.monotonic() - started, 1e-9)
            pipe.send((sum(min(s.events, total) for s in streams), list(latencies), cpu))
        elif command == "close":
            for stream in streams:
                if stream.transport is not None:
                    stream.transport.close()
            await asyncio.sleep(0.2)
            pipe.send(None)
            return


def _client_process(port: int, request: bytes, pipe: Connection) -> None:
    try:
        import uvloop  # present with uvicorn[standard]; plain asyncio otherwise

        uvloop.run(_client(port, request, pipe))
    except ImportError:
        asyncio.run(_client(port, request, pipe))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _redis_clients(settings: Settings) -> int:
    with redis.Redis(**server_options(settings)) as connection:
        info: dict[str, Any] = connection.info("clients")
        return int(info["connected_clients"])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--first", type=int, default=100, help="streams at the first connection count")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--processes", type=int, default=4, help="client processes holding the streams")
    args = parser.parse_args()
    settings = load_settings(local_environ(), dotenv=None)
    with TemporaryDirectory() as tmp:
        logs = Path(tmp)
        with (
            running_api(logs / "api.log", LOG_LEVEL="WARNING") as api,
            running_worker(logs / "worker.log", LOG_LEVEL="WARNING") as worker,
        ):
            client = Client(api.base_url, settings.memstack_bootstrap_api_key)
            roots = {"api": api.process.pid, "worker": worker.process.pid}
            rows = _run(api.base_url, roots, client, settings, args)
    emit(rows)


def _run(
    base_url: str, roots: dict[str, int], client: Client, settings: Settings, args: argparse.Namespace
) -> list[Row]:
    pid = roots["api"]
    project = client.create_project()
    port = int(base_url.rsplit(":", 1)[1])
    request = (
        f"GET /api/v1/projects/{project}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {client.http.headers['Authorization']}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    children = []
    for _ in range(args.processes):
        ours, theirs = context.Pipe()
        child = context.Process(target=_client_process, args=(port, request, theirs), daemon=True)
        child.start()
        pipes.append(ours)
        children.append(child)
    try:

        def open_streams(total: int) -> None:
            for n, pipe in enumerate(pipes):
                pipe.send(("open", total // len(pipes) + (1 if n < total % len(pipes) else 0)))
            for pipe in pipes:
                pipe.recv()

        warm = client.post_episode(project, "Warmup: Ada Lovelace met Charles Babbage in London.")
        warm.raise_for_status()
        client.wait_all(project, "completed", 1)
        time.sleep(1)
        rss_before = _rss_kib(pid)
        open_streams(args.first)
        time.sleep(1)
        few_api, few_redis = connections_to(pid, settings.redis_port), _redis_clients(settings)
        open_streams(args.streams - args.first)
        time.sleep(2)
        rss_after = _rss_kib(pid)
        many_api, many_redis = connections_to(pid, settings.redis_port), _redis_clients(settings)
        expected = 3 * args.episodes
        with cpu.measure(roots) as usage:
            for pipe in pipes:
                pipe.send(("expect", (expected, time.monotonic() + 120)))
            for n in range(args.episodes):
                response = client.post_episode(
                    project, f"Episode {n}: Grace Hopper joined Navy Labs in Arlington."
                )
                response.raise_for_status()
            results = [pipe.recv() for pipe in pipes]
        for pipe in pipes:
            pipe.send(("close", None))
            pipe.recv()
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join()
    delivered = sum(r[0] for r in results)
    latencies = [value for r in results for value in r[1]]
    client_cpu = max(r[2] for r in results)
    per_stream_kib = (rss_after - rss_before) / args.streams
    print(
        json.dumps(
            {
                "delivered": delivered,
                "expected": expected * args.streams,
                "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
                "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
                "busiest_client_process_cpu": round(client_cpu, 2),
                "api_redis_connections": [few_api, many_api],
                "redis_connected_clients": [few_redis, many_redis],
                "api_rss_kib": [rss_before, rss_after],
                "cpu_while_delivering": usage.describe(),
            }
        ),
        flush=True,
    )
    return [
        ratio_row(
            GOAL,
            f"events delivered, {args.streams} streams x {expected} events",
            delivered,
            expected * args.streams,
            minimum=1.0,
            baseline_label="sent",
        ),
        limit_row(
            GOAL, "p99 status change -> delivery", _percentile(latencies, 0.99) * 1000, unit="ms", maximum=100
        ),
        limit_row(GOAL, "API RSS growth per stream", per_stream_kib * 1024 / 1000, unit="KB", maximum=50),
        ratio_row(
            GOAL,
            f"API's Redis connections, {args.streams} vs {args.first} streams",
            many_api,
            few_api,
            baseline_label=f"{args.first} streams",
        ),
        # Flat, not exactly equal: the pool may open one more for a command that overlaps the
        # reader's blocked XREAD (the readiness probe, an accept); never one per stream.
        limit_row(
            GOAL,
            f"API's Redis connections added from {args.first} to {args.streams} streams",
            many_api - few_api,
            unit="connections",
            maximum=2,
        ),
        ratio_row(
            GOAL,
            f"Redis connected_clients (whole server), {args.streams} vs {args.first}",
            many_redis,
            few_redis,
            baseline_label=f"{args.first} streams",
        ),
        limit_row(GOAL, "busiest client process CPU (not the bottleneck)", client_cpu * 100, unit="%"),
        # What bounds the p99: every event is one write per stream, made by the one event loop.
        limit_row(GOAL, "API CPU while delivering", usage.parts["api"], unit="cores"),
        limit_row(
            GOAL,
            "API CPU per event delivered to one stream",
            usage.per_item_us("api", delivered),
            unit="us",
        ),
        limit_row(GOAL, "machine CPU busy while delivering", usage.busy, unit=f"of {usage.cores} cores"),
    ]


if __name__ == "__main__":
    main()
