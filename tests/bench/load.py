"""A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections on raw asyncio streams.

An HTTP client library costs more CPU per request than the routes being measured; this one
writes prepared requests and reads responses by Content-Length, so on a two-core machine
the client is not what limits the rate. Two modes:
- closed loop (`saturate`): N connections each send the next request as soon as the last is
  answered; gives the highest rate the server sustains at that concurrency;
- open loop (`paced`): requests are due at a fixed overall rate, spread over the connections,
  and latency counts from when a request was due, so a stall is not hidden (no coordinated
  omission).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RequestFactory = Callable[[int], bytes]
"""Builds the raw bytes of request number n."""


def http_request(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Callable[[int], bytes]:
    """A factory of the same request (the body may be varied by the caller)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        head.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    return lambda _n: raw


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """Latency in milliseconds at percentile p (0 to 100)."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    @property
    def p50(self) -> float:
        return 1000 * statistics.median(self.latencies)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _closed_loop(
    host: str, port: int, make: RequestFactory, counter: list[int], stop_at: float, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            n = counter[0]
            counter[0] += 1
            sent = time.perf_counter()
            writer.write(make(n))
            status, _ = await _read_response(reader)
            result.latencies.append(time.perf_counter() - sent)
            result.statuses[status] += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def _open_loop(
    host: str, port: int, make: RequestFactory, due: list[float], offset: int, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for n, at in enumerate(due):
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(make(offset + n))
            status, _ = await _read_response(reader)
            result.latencies.append(time.perf_counter() - at)
            result.statuses[status] += 1
    finally:
        writer.close()
        await writer.wait_closed()


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _saturate(base_url: str, make: RequestFactory, connections: int, seconds: float) -> LoadResult:
    host, port = _address(base_url)
    result = LoadResult(requests=0, seconds=seconds)
    counter = [0]
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_closed_loop(host, port, make, counter, stop_at, result) for _ in range(connections))
    )
    result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies)
    return result


async def _paced(
    base_url: str, make: RequestFactory, connections: int, rate: float, seconds: float
) -> LoadResult:
    host, port = _address(base_url)
    total = max(int(rate * seconds), connections)
    start = time.perf_counter() + 0.2
    schedule = [start + n / rate for n in range(total)]
    result = LoadResult(requests=0, seconds=seconds)
    lanes = [schedule[i::connections] for i in range(connections)]
    await asyncio.gather(
        *(_open_loop(host, port, make, lane, i * len(lanes[0]), result) for i, lane in enumerate(lanes))
    )
    result.seconds = time.perf_counter() - start
    result.requests = len(result.latencies)
    return result


def saturate(base_url: str, make: RequestFactory, *, connections: int, seconds: float) -> LoadResult:
    """Closed loop: as fast as the server answers, `connections` requests in flight."""
    return asyncio.run(_saturate(base_url, make, connections, seconds))


def paced(
    base_url: str, make: RequestFactory, *, connections: int, rate: float, seconds: float
) -> LoadResult:
    """Open loop at `rate` requests/s; latency counted from each request's due time."""
    return asyncio.run(_paced(base_url, make, connections, rate, seconds))
