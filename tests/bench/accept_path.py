"""The accept path: `POST …/episodes` (one episode per request) against a bare route, same process.

One API process (uvicorn), no worker (the jobs wait in the queue), 32 keep-alive connections:
1. closed loop on `GET /health` (the bare route: routing, middleware, serialisation) and on
   `POST /api/v1/projects/{id}/episodes` (authentication, rate limit, the project lookup, the
   committed row, the queued job): requests/s, and their ratio (target >= 0.5x);
2. open loop at half the POST rate just measured: p99 latency from when each request was due
   (target <= 25 ms);
3. the API process's CPU per request of each kind (`tests.bench.cpu`): what the ratio is made of.
The rate limit is on (a limit no run reaches), as in a deployment. The queued jobs and the
project are removed afterwards. Run with `make bench` or, servers up,
`.venv/bin/python -m tests.bench.accept_path`. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import msgspec
import psycopg

from service.settings import Settings, load_settings
from service.stores.queue import IngestQueue
from service.stores.redis import create_sync_redis
from tests.bench import cpu, load, report
from tests.bench.report import Row
from tests.support.client import Client
from tests.support.processes import running_api
from tests.support.stack import local_environ

GOAL = "1 accept"
CONNECTIONS = 32


def episode_requests(base_url: str, project: str, key: str) -> load.RequestFactory:
    url = f"{base_url}/api/v1/projects/{project}/episodes"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]

    def make(n: int) -> bytes:
        body = msgspec.json.encode({"content": f"Accept {run} {n}: Person{n % 997} met Agent{n % 131}."})
        return load.http_request("POST", url, body, headers)(n)

    return make


def discard_project(settings: Settings, client: Client, project: str) -> None:
    """Drop the jobs nobody ran, then the project with its episodes."""
    with psycopg.connect(settings.postgres_conninfo) as conn:
        rows = conn.execute(
            "SELECT DISTINCT job_id FROM episodes WHERE project_id = %s AND job_id IS NOT NULL", (project,)
        ).fetchall()
    connection = create_sync_redis(settings)
    try:
        queue = IngestQueue(settings, connection)
        job_ids = [r[0] for r in rows]
        for start in range(0, len(job_ids), 1000):
            queue.discard_blocking(job_ids[start : start + 1000])
    finally:
        connection.close()
    client.http.delete(f"/api/v1/projects/{project}").raise_for_status()


@dataclass(frozen=True)
class Round:
    bare_rate: float  # GET /health requests/s
    accept_rate: float  # POST episodes requests/s
    p99_ms: float  # POST at half the rate
    p50_ms: float
    bare_cpu_us: float  # the API process's CPU per request
    accept_cpu_us: float
    accept_busy: float  # the machine's busy cores while POSTs saturate the API


def measure(base_url: str, key: str, project: str, seconds: float, api_pid: int) -> Round:
    health = load.http_request("GET", f"{base_url}/health")
    post = episode_requests(base_url, project, key)
    with cpu.measure({"api": api_pid}) as bare_cpu:
        bare = load.saturate(base_url, health, connections=CONNECTIONS, seconds=seconds)
    with cpu.measure({"api": api_pid}) as accept_cpu:
        accept = load.saturate(base_url, post, connections=CONNECTIONS, seconds=seconds)
    for result, name in ((bare, "GET /health"), (accept, "POST episodes")):
        wrong = {s: n for s, n in result.statuses.items() if s not in (200, 202)}
        if wrong:
            raise SystemExit(f"{name}: unexpected statuses {wrong}")
    half = load.paced(base_url, post, connections=CONNECTIONS, rate=accept.rate / 2, seconds=seconds)
    return Round(
        bare.rate,
        accept.rate,
        half.percentile(99),
        half.p50,
        bare_cpu.per_item_us("api", bare.requests),
        accept_cpu.per_item_us("api", accept.requests),
        accept_cpu.busy,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings(local_environ(), dotenv=None)
    key = settings.memstack_bootstrap_api_key
    with TemporaryDirectory() as tmp:
        overrides = {
            "LOG_LEVEL": "WARNING",
            "QUEUE_MAX_SIZE": "10000000",
            "RATE_LIMIT_PER_MINUTE": "100000000",
        }
        with running_api(Path(tmp) / "api.log", **overrides) as api:
            client = Client(api.base_url, key)
            project = client.create_project()
            try:
                pid = api.process.pid
                measure(api.base_url, key, project, 1.0, pid)  # warm-up: pools, caches, JIT-free paths
                runs = [measure(api.base_url, key, project, args.seconds, pid) for _ in range(args.rounds)]
            finally:
                discard_project(settings, client, project)
                client.http.close()
    bare = statistics.median(r.bare_rate for r in runs)
    accept = statistics.median(r.accept_rate for r in runs)
    p99 = statistics.median(r.p99_ms for r in runs)
    p50 = statistics.median(r.p50_ms for r in runs)
    bare_us = statistics.median(r.bare_cpu_us for r in runs)
    accept_us = statistics.median(r.accept_cpu_us for r in runs)
    rows: list[Row] = [
        report.ratio_row(
            GOAL,
            f"POST episodes req/s vs GET /health ({CONNECTIONS} conns)",
            accept,
            bare,
            minimum=0.5,
            baseline_label="GET /health",
        ),
        report.limit_row(
            GOAL, f"POST p99 at half that rate ({accept / 2:.0f}/s)", p99, unit="ms", maximum=25
        ),
        report.limit_row(GOAL, "POST p50 at half that rate", p50, unit="ms"),
        # One event loop: once it is saturated, the rates' ratio is the inverse of these.
        report.ratio_row(
            GOAL,
            "API CPU per request, POST episodes vs GET /health (us)",
            accept_us,
            bare_us,
            baseline_label="GET /health",
        ),
        report.limit_row(
            GOAL,
            "machine CPU busy while POSTs saturate the API",
            statistics.median(r.accept_busy for r in runs),
            unit=f"of {os.cpu_count()} cores",
        ),
    ]
    report.emit(rows)


if __name__ == "__main__":
    main()
