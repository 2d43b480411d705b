"""The per-key rate limit against the real Redis, through real API processes."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from service.settings import Settings
from service.stores.ratelimit import KEY_PREFIX, RateLimiter, create_limiter_redis
from service.stores.redis import create_sync_redis
from tests.integration.edge_app import ECHO_PATH, EDGE_APP
from tests.support.processes import ApiLauncher, RunningApi
from tests.support.stack import free_port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def documentation_ip() -> str:
    """A fresh address from 2001:db8::/32, so reruns never share a counter."""
    return str(ipaddress.IPv6Address(b"\x20\x01\x0d\xb8" + uuid.uuid4().bytes[:12]))


def loopback_ip() -> str:
    """A random address in 127.0.0.0/8 other than 127.0.0.1 (all of it is loopback on Linux)."""
    return str(ipaddress.IPv4Address(b"\x7f" + uuid.uuid4().bytes[:2] + b"\x02"))


def new_token() -> str:
    return f"msk_test_{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def limited_api(tmp_path_factory: pytest.TempPathFactory, running_api: ApiLauncher) -> Iterator[RunningApi]:
    with running_api(tmp_path_factory.mktemp("ratelimit"), app=EDGE_APP, RATE_LIMIT_PER_MINUTE="5") as api:
        yield api


def test_store_is_atomic_under_concurrency(settings: Settings) -> None:
    async def burst() -> list[bool]:
        client = create_limiter_redis(settings)
        limiter = RateLimiter(50, prefix=f"memstack:test:{uuid.uuid4().hex}:")
        try:
            decisions = await asyncio.gather(*(limiter.hit(client, "someone") for _ in range(300)))
            ttl = await client.pttl(limiter.key("someone"))
        finally:
            await client.aclose()
        assert 0 < ttl <= 120_000
        return [decision.allowed for decision in decisions]

    assert sum(asyncio.run(burst())) == 50


def test_retry_after_is_honest(settings: Settings) -> None:
    """After waiting Retry-After seconds, a request is accepted again (2-second window)."""

    async def scenario() -> None:
        client = create_limiter_redis(settings)
        limiter = RateLimiter(4, window_seconds=2, prefix=f"memstack:test:{uuid.uuid4().hex}:")
        try:
            for _ in range(3):
                decisions = [await limiter.hit(client, "k") for _ in range(6)]
                assert [d.allowed for d in decisions].count(True) <= 4
                denied = decisions[-1]
                assert not denied.allowed
                assert 1 <= denied.retry_after_seconds <= 4
                await asyncio.sleep(denied.retry_after_seconds)
                assert (await limiter.hit(client, "k")).allowed
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_limit_headers_429_and_per_key_buckets(limited_api: RunningApi, settings: Settings) -> None:
    token, other = new_token(), new_token()
    with httpx.Client(base_url=limited_api.base_url, timeout=10) as http:
        answers = [http.post(ECHO_PATH, content=b"x", headers=bearer(token)) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert [a.headers["RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
        for answer in answers:
            assert answer.headers["RateLimit-Limit"] == "5"
            assert 0 < int(answer.headers["RateLimit-Reset"]) <= 60
            assert "Retry-After" not in answer.headers

        throttled = http.post(ECHO_PATH, content=b"x", headers=bearer(token))
        assert throttled.status_code == 429
        assert throttled.headers["content-type"].startswith("application/problem+json")
        problem = throttled.json()
        assert problem["title"] == "Too Many Requests"
        assert problem["status"] == 429
        assert "5 requests per minute" in problem["detail"]
        retry_after = int(throttled.headers["Retry-After"])
        assert 1 <= retry_after <= 120
        assert throttled.headers["RateLimit-Remaining"] == "0"
        assert throttled.headers["RateLimit-Reset"] == str(retry_after)

        # Another key has its own budget; probes and docs are never throttled.
        assert http.post(ECHO_PATH, content=b"x", headers=bearer(other)).status_code == 200
        for _ in range(8):
            assert http.get("/health", headers=bearer(token)).status_code == 200
            assert http.get("/ready", headers=bearer(token)).status_code in (200, 503)
        for path in ("/schema", "/schema/openapi.json", "/schema/assets/swagger-ui.css"):
            assert http.get(path, headers=bearer(token)).status_code == 200

    # Redis holds a hash of the key, never the key itself.
    connection = create_sync_redis(settings)
    try:
        keys = [key.decode() for key in connection.scan_iter(match=f"{KEY_PREFIX}*", count=1000)]
    finally:
        connection.close()
    assert f"{KEY_PREFIX}key:{hashlib.sha256(token.encode()).hexdigest()}" in keys
    assert not [key for key in keys if token in key]


def test_throttled_requests_are_counted_as_429_in_metrics(limited_api: RunningApi) -> None:
    token = new_token()
    with httpx.Client(base_url=limited_api.base_url, timeout=10) as http:
        statuses = [http.post(ECHO_PATH, headers=bearer(token)).status_code for _ in range(7)]
    assert statuses.count(429) == 2
    metrics = httpx.get(limited_api.metrics_url, timeout=10).text
    assert 'status="429"' in metrics


@pytest.mark.parametrize(("trusted", "separate"), [("127.0.0.0/8", True), ("", False)])
def test_client_ip_from_forwarded_for_only_behind_trusted_proxies(
    tmp_path: Path, trusted: str, separate: bool, running_api: ApiLauncher
) -> None:
    # running_api passes --no-proxy-headers: uvicorn would otherwise rewrite the peer from
    # X-Forwarded-For itself for loopback peers; the limiter must decide on its own from TRUSTED_PROXIES.
    with (
        running_api(
            tmp_path,
            app=EDGE_APP,
            RATE_LIMIT_PER_MINUTE="3",
            TRUSTED_PROXIES=trusted,
        ) as api,
        # a fresh loopback source address: the peer's own bucket is never shared with other tests
        httpx.Client(
            base_url=api.base_url, timeout=10, transport=httpx.HTTPTransport(local_address=loopback_ip())
        ) as http,
    ):
        first, second = documentation_ip(), documentation_ip()
        statuses = [http.post(ECHO_PATH, headers={"X-Forwarded-For": first}).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        status = http.post(ECHO_PATH, headers={"X-Forwarded-For": f"{second}, 127.0.0.1"}).status_code
        assert status == (200 if separate else 429)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (bash ci/redis.sh start installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.close()
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_fails_open_when_redis_goes_away(
    tmp_path: Path, private_redis: tuple[int, subprocess.Popen[bytes]], running_api: ApiLauncher
) -> None:
    port, server = private_redis
    token = new_token()
    with (
        running_api(
            tmp_path, app=EDGE_APP, RATE_LIMIT_PER_MINUTE="2", REDIS_PORT=str(port), REDIS_PASSWORD=""
        ) as api,
        httpx.Client(base_url=api.base_url, timeout=10) as http,
    ):
        statuses = [http.post(ECHO_PATH, headers=bearer(token)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        server.terminate()
        server.wait(timeout=10)
        started = time.monotonic()
        answers = [http.post(ECHO_PATH, headers=bearer(token)) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert not [a for a in answers if "RateLimit-Limit" in a.headers]
        assert time.monotonic() - started < 5
        log = api.log()
    assert "rate limiter: Redis unavailable" in log
    assert token not in log


def test_two_processes_share_one_limit(tmp_path: Path, running_api: ApiLauncher) -> None:
    """A burst of 2x the limit spread over two API processes: accepted stays within 5% of the limit."""
    limit, burst = 200, 400
    token = new_token()
    with (
        running_api(tmp_path, app=EDGE_APP, RATE_LIMIT_PER_MINUTE=str(limit)) as first,
        running_api(tmp_path, app=EDGE_APP, RATE_LIMIT_PER_MINUTE=str(limit)) as second,
        httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32)) as http,
    ):
        urls = [f"{api.base_url}{ECHO_PATH}" for api in (first, second)]

        def call(n: int) -> tuple[int, int]:
            return n % 2, http.post(urls[n % 2], content=b"{}", headers=bearer(token)).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, range(burst)))
        elapsed = time.monotonic() - started

    counts = Counter(status for _, status in results)
    per_process = Counter(process for process, status in results if status == 200)
    print(
        f"limit={limit} burst={burst} in {elapsed:.2f}s: {dict(counts)}, accepted per process {per_process}"
    )
    assert set(counts) <= {200, 429}
    assert limit <= counts[200] <= limit * 1.05
    assert per_process[0] > 0
    assert per_process[1] > 0
