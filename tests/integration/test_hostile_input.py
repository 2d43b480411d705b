"""Hostile input and abuse (issue 13): no 5xx from any input, nothing stored for a refused
request, no stored value breaks a read, errors name the public field, unknown-key floods are
throttled before PostgreSQL, log lines cannot be forged, the metrics port serves only /metrics.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from service.api.auth_throttle import AUTH_FAILURES_PER_MINUTE
from service.api.auth_throttle import KEY_PREFIX as AUTH_FAILURE_PREFIX
from service.api.body import MAX_JSON_DEPTH
from service.settings import Settings
from service.stores import tenancy
from service.stores.episode_status import claim
from service.stores.ratelimit import RateLimiter, create_limiter_redis
from tests.support.client import Client
from tests.support.processes import ApiLauncher, RunningApi, WorkerLauncher
from tests.support.stack import free_port

OUT_OF_RANGE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


def documentation_ip() -> str:
    """A fresh address from 2001:db8::/32, so reruns never share a counter."""
    return str(ipaddress.IPv6Address(b"\x20\x01\x0d\xb8" + uuid.uuid4().bytes[:12]))


def nested(depth: int) -> str:
    """A JSON array nested `depth` levels deep (json.dumps itself would recurse too deep)."""
    return "[" * depth + "]" * depth


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def fields(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["source"]) for e in body.get("errors", [])]


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, running_api: ApiLauncher
) -> Iterator[tuple[RunningApi, Client]]:
    with running_api(tmp_path_factory.mktemp("hostile") / "api.log") as api:
        yield api, Client(api.base_url, settings.memstack_bootstrap_api_key)


def rows_in(settings: Settings, project: str) -> int:
    with psycopg.connect(settings.postgres_conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM episodes WHERE project_id = %s", (project,)).fetchone()
    assert row is not None
    return int(row[0])


# --- 1. no 5xx from input ----------------------------------------------------------------------


@pytest.mark.parametrize("token", ["é…", "ключ-\u202e", "msk_\U0001f600", "\xff\xfe"])
def test_a_non_ascii_bearer_token_is_a_401(hostile: tuple[RunningApi, Client], token: str) -> None:
    api, _ = hostile
    header = f"Bearer {token}".encode()  # on the wire as UTF-8 bytes
    response = httpx.get(f"{api.base_url}/api/v1/projects", headers={b"Authorization": header})
    problem(response, 401)
    assert "unhandled error" not in api.log()


def test_deep_json_is_refused_before_decoding(hostile: tuple[RunningApi, Client], settings: Settings) -> None:
    api, client = hostile
    project = client.create_project()
    base = f"/api/v1/projects/{project}"
    deep = nested(1000)
    cases: list[tuple[str, str]] = [
        (f"{base}/episodes", f'{{"content": "deep", "metadata": {{"a": {deep}}}}}'),
        (f"{base}/episodes/bulk", f'{{"episodes": [{{"content": "deep", "metadata": {{"a": {deep}}}}}]}}'),
        (f"{base}/search", f'{{"query": "x", "types": {deep}}}'),
        (f"{base}/search", deep),
        ("/api/v1/projects", f'{{"name": {nested(MAX_JSON_DEPTH + 1)}}}'),
    ]
    for path, body in cases:
        answer = problem(client.http.post(path, content=body), 400)
        assert str(MAX_JSON_DEPTH) in answer["detail"]
    # Just inside the limit is fine; brackets inside strings do not count.
    inside = f'{{"content": "{"[" * 5000}", "metadata": {{"a": {nested(MAX_JSON_DEPTH - 2)}}}}}'
    ok = client.http.post(f"{base}/episodes", content=inside)
    assert ok.status_code == 202, ok.text
    assert rows_in(settings, project) == 1
    assert "unhandled error" not in api.log()


# --- 2. a refused request stores nothing; no stored value breaks a read ------------------------


@pytest.mark.parametrize("at", OUT_OF_RANGE_TIMES)
def test_an_unstorable_reference_time_is_refused_and_not_stored(
    hostile: tuple[RunningApi, Client], settings: Settings, at: str
) -> None:
    _, client = hostile
    project = client.create_project()
    for path, body in (
        ("episodes", {"content": "Alice met Bob.", "reference_time": at}),
        (
            "episodes/bulk",
            {"episodes": [{"content": "ok"}, {"content": "Alice met Bob.", "reference_time": at}]},
        ),
    ):
        answer = problem(client.http.post(f"/api/v1/projects/{project}/{path}", json=body), 422)
        assert next(f for f, _ in fields(answer)).endswith("reference_time"), answer
    assert rows_in(settings, project) == 0
    listing = client.http.get(f"/api/v1/projects/{project}/episodes")
    assert listing.status_code == 200, listing.text


def test_a_stored_out_of_range_time_does_not_break_reads(
    hostile: tuple[RunningApi, Client], settings: Settings
) -> None:
    """A row written before the edge refused such values: the project and the worker still read it."""
    _, client = hostile
    project = client.create_project()
    episode = uuid.uuid4()
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO episodes (id, project_id, content, reference_time) VALUES (%s, %s, 'x', %s)",
            (episode, project, "0001-01-01T00:00:00+14:00"),
        )
        claimed = claim(conn, None, [episode])
    assert [c.reference_time for c in claimed] == [None]
    listing = client.http.get(f"/api/v1/projects/{project}/episodes")
    assert listing.status_code == 200, listing.text
    assert [item["reference_time"] for item in listing.json()["items"]] == [None]
    single = client.http.get(f"/api/v1/projects/{project}/episodes/{episode}")
    assert single.status_code == 200, single.text


# --- 3. strict types and 4. public field names -------------------------------------------------


def test_wrong_types_are_refused_naming_the_field(hostile: tuple[RunningApi, Client]) -> None:
    _, client = hostile
    project = client.create_project()
    base = f"/api/v1/projects/{project}"
    cases: list[tuple[str, Any, str]] = [
        ("episodes", {"content": "x", "reference_time": 1700000000}, "reference_time"),
        ("episodes", {"content": 5}, "content"),
        ("episodes", {"content": "x", "source": ["text"]}, "source"),
        (
            "episodes/bulk",
            {"episodes": [{"content": "x"}, {"content": "y", "client_id": 7}]},
            "episodes[1].client_id",
        ),
        ("search", {"query": "x", "limit": "10"}, "limit"),
        ("search", {"query": "x", "limit": 10.0}, "limit"),
        ("search", {"query": "x", "types": "Person"}, "types"),
    ]
    for path, body, field in cases:
        answer = problem(client.http.post(f"{base}/{path}", json=body), 422)
        assert fields(answer) == [(field, "body")], (body, answer)
        assert field in answer["detail"]
    assert (
        problem(client.http.post("/api/v1/projects", json={"name": 12}), 422)["errors"][0]["field"] == "name"
    )


def test_errors_name_the_public_field_or_header(hostile: tuple[RunningApi, Client]) -> None:
    _, client = hostile
    project = client.create_project()
    base = f"/api/v1/projects/{project}"
    cases: list[tuple[httpx.Response, list[tuple[str, str]]]] = [
        (client.http.post(f"{base}/episodes", json={}), [("content", "body")]),
        (client.http.post(f"{base}/episodes", json={"content": "x", "colour": 1}), [("colour", "body")]),
        (client.http.post(f"{base}/episodes", json=[]), [("body", "body")]),
        (client.http.post(f"{base}/episodes", content=b""), [("body", "body")]),
        (
            client.http.post(
                f"{base}/episodes", json={"content": "x"}, headers={"Idempotency-Key": "k" * 201}
            ),
            [("Idempotency-Key", "header")],
        ),
        (client.http.get(f"{base}/episodes", params={"limit": "many"}), [("limit", "query")]),
        (client.http.get(f"{base}/episodes", params={"status": "lost"}), [("status", "query")]),
    ]
    for response, expected in cases:
        answer = problem(response, 422)
        assert fields(answer) == expected, answer
        text = json.dumps(answer)
        for internal in ("ParamType", "idempotency_key", '"data"'):
            assert internal not in text, answer


# --- 5. Last-Event-ID ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "18446744073709551616-0",  # out of range: one past 2**64 - 1
        "0-18446744073709551616",
        "9" * 70 + "-0",
        "abc",  # malformed
        "1-2-3",
        "-1-0",
        "1",
        "\u0661-\u0662",  # non-ASCII digits
    ],
)
def test_a_bad_last_event_id_is_a_400_naming_the_header(
    hostile: tuple[RunningApi, Client], value: str
) -> None:
    _, client = hostile
    project = client.create_project()
    response = client.http.get(
        f"/api/v1/projects/{project}/events", headers={b"Last-Event-ID": value.encode()}
    )
    answer = problem(response, 400)
    assert fields(answer) == [("Last-Event-ID", "header")]


@pytest.mark.parametrize("value", ["0-0", "18446744073709551615-18446744073709551615", "1700000000000-5"])
def test_a_valid_last_event_id_opens_the_stream(hostile: tuple[RunningApi, Client], value: str) -> None:
    _, client = hostile
    project = client.create_project()
    with client.http.stream(
        "GET", f"/api/v1/projects/{project}/events", headers={"Last-Event-ID": value}, timeout=10
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_text())
    assert ": connected" in first


# --- 6. unknown-key floods ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def throttled_api(tmp_path_factory: pytest.TempPathFactory, running_api: ApiLauncher) -> Iterator[RunningApi]:
    with running_api(
        tmp_path_factory.mktemp("auth-throttle") / "api.log",
        RATE_LIMIT_PER_MINUTE="1000",
        TRUSTED_PROXIES="127.0.0.1",
    ) as api:
        yield api


def test_a_random_token_flood_is_throttled_per_address(throttled_api: RunningApi, settings: Settings) -> None:
    address = documentation_ip()
    known = {"Authorization": f"Bearer {settings.memstack_bootstrap_api_key}", "X-Forwarded-For": address}
    with httpx.Client(base_url=throttled_api.base_url, timeout=10) as http:
        assert http.get("/api/v1/projects", headers=known).status_code == 200  # resolved and cached
        statuses = []
        for _ in range(AUTH_FAILURES_PER_MINUTE + 10):
            flood = {"Authorization": f"Bearer msk_{uuid.uuid4().hex}", "X-Forwarded-For": address}
            response = http.get("/api/v1/projects", headers=flood)
            statuses.append(response.status_code)
        assert statuses == [401] * AUTH_FAILURES_PER_MINUTE + [429] * 10
        assert 1 <= int(response.headers["Retry-After"]) <= 120
        problem(response, 429)
        # The key already known to this process keeps working; another address is not affected.
        assert http.get("/api/v1/projects", headers=known).status_code == 200
        elsewhere = {"Authorization": f"Bearer msk_{uuid.uuid4().hex}", "X-Forwarded-For": documentation_ip()}
        assert http.get("/api/v1/projects", headers=elsewhere).status_code == 401


def test_a_throttled_address_never_reaches_postgres(
    tmp_path: Path, settings: Settings, running_api: ApiLauncher
) -> None:
    """With PostgreSQL unreachable, a throttled unknown key still gets its 429 (no lookup was tried)."""
    address = documentation_ip()

    async def exhaust() -> None:
        client = create_limiter_redis(settings)
        limiter = RateLimiter(AUTH_FAILURES_PER_MINUTE, prefix=AUTH_FAILURE_PREFIX)
        try:
            for _ in range(AUTH_FAILURES_PER_MINUTE):
                await limiter.hit(client, f"ip:{address}")
        finally:
            await client.aclose()

    asyncio.run(exhaust())
    with running_api(
        tmp_path / "api.log",
        RATE_LIMIT_PER_MINUTE="1000",
        TRUSTED_PROXIES="127.0.0.1",
        POSTGRES_PORT=str(free_port()),
    ) as api:
        flood = {"Authorization": f"Bearer msk_{uuid.uuid4().hex}", "X-Forwarded-For": address}
        response = httpx.get(f"{api.base_url}/api/v1/projects", headers=flood, timeout=10)
        problem(response, 429)


def test_a_failed_lookup_does_not_write(settings: Settings) -> None:
    """Looking up an unknown key works inside a read-only transaction: it writes nothing."""

    async def lookup() -> None:
        async with await psycopg.AsyncConnection.connect(settings.postgres_conninfo) as conn:
            await conn.execute("SET TRANSACTION READ ONLY")
            assert await tenancy.principal_for_key(conn, f"msk_{uuid.uuid4().hex}") is None
            await conn.rollback()

    asyncio.run(lookup())


# --- 7. log injection --------------------------------------------------------------------------

FORGED_PATH = "/nowhere%0d%0a2026-01-01 00:00:00.000 INFO FORGED%1b[31m%00%e2%80%ae"


def test_text_logs_escape_control_characters_from_paths(tmp_path: Path, running_api: ApiLauncher) -> None:
    log_path = tmp_path / "api.log"
    with running_api(log_path, LOG_FORMAT="text") as api:
        assert httpx.get(api.base_url + FORGED_PATH).status_code == 404
    text = log_path.read_text(encoding="utf-8")
    assert not [line for line in text.splitlines() if "FORGED" in line and "/nowhere" not in line], text
    for raw in ("\x1b", "\x00", "\u202e"):
        assert raw not in text
    assert "/nowhere\\r\\n2026-01-01 00:00:00.000 INFO FORGED\\x1b[31m\\x00\\u202e" in text


def test_json_logs_stay_one_object_per_line(tmp_path: Path, running_api: ApiLauncher) -> None:
    log_path = tmp_path / "api.log"
    with running_api(log_path, LOG_FORMAT="json") as api:
        assert httpx.get(api.base_url + FORGED_PATH).status_code == 404
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    messages = [json.loads(line)["record"]["message"] for line in lines]  # every line is one object
    assert any("/nowhere\r\n2026-01-01 00:00:00.000 INFO FORGED\x1b[31m\x00" in m for m in messages)


# --- 8. the metrics server ---------------------------------------------------------------------


def test_the_metrics_port_serves_only_metrics(hostile: tuple[RunningApi, Client]) -> None:
    api, _ = hostile
    root = api.metrics_url.removesuffix("/metrics")
    assert httpx.get(api.metrics_url).status_code == 200
    for path in ("/", "/x", "/metrics/", "/metrics/x", "/favicon.ico", "/api/v1/projects"):
        assert httpx.get(root + path).status_code == 404, path
    assert httpx.post(api.metrics_url).status_code == 405


def test_the_metrics_bind_address_is_a_setting(tmp_path: Path, running_api: ApiLauncher) -> None:
    """Loopback by default (other local addresses cannot reach it); 0.0.0.0 when asked (a pod)."""
    with running_api(tmp_path / "default.log") as api:
        other_address = api.metrics_url.replace("127.0.0.1", "127.0.0.2")
        assert httpx.get(api.metrics_url).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(other_address)
    with running_api(tmp_path / "all.log", METRICS_HOST="0.0.0.0") as api:  # noqa: S104
        assert httpx.get(api.metrics_url.replace("127.0.0.1", "127.0.0.2")).status_code == 200


def test_the_worker_metrics_port_serves_only_metrics(tmp_path: Path, running_worker: WorkerLauncher) -> None:
    with running_worker(tmp_path / "worker.log") as worker:
        assert httpx.get(worker.metrics_url).status_code == 200
        assert httpx.get(worker.metrics_url.removesuffix("/metrics") + "/anything").status_code == 404
