"""The chart's alert rules loaded by a real Prometheus that scrapes the real API and worker.

Started here, on loopback and free ports: TCP proxies in front of PostgreSQL and Neo4j (so
that "the database is gone" can be produced for this API alone, without stopping the servers
other test runs share), a database of our own, a Redis DB of our own, the API (uvicorn) and
the worker (`python -m worker`), and Prometheus (Debian's server) loading the rules rendered
from the chart with tests/alerts/live-values.yaml (short windows and `for`), scraping every
second. A background client sends user traffic and polls /ready like the kubelet's probe.

The phases run in file order, each from a healthy state and back to it:
  healthy      all targets up, every rule evaluated without error, no alert active, the SSE
               route label is the one the p99 alert excludes
  outage       PostgreSQL and Neo4j cut: MemStackApiHighErrorRate and MemStackDependencyDown
               (postgres, neo4j) fire; restored: they resolve
  dashboard    every dashboard query runs; the core panels have data
  backlog      the worker suspended (`rq suspend`: alive and scraped, taking no jobs), episodes
               posted until the queue passes the threshold: MemStackQueueNearFull fires;
               resumed: it resolves
  job failures the worker's way to Neo4j cut: its jobs fail, MemStackJobFailureRatioHigh fires;
               restored: it resolves once the failures leave the rate window
  targets down API and worker killed: MemStackApiDown and MemStackWorkerDown fire; restarted:
               they resolve
Time to fire and to resolve are reported at the end of the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import yaml
from rq.suspension import resume, suspend

from tests.alerts.alert_watch import AlertWatch, dashboard_queries, matching
from tests.alerts.chart_rules import AlertSpec, alert_rules, render_rule_spec
from tests.alerts.conftest import TIMINGS
from tests.alerts.live_stack import (
    Process,
    PrometheusApi,
    TcpProxy,
    api_process,
    free_port,
    local_environ,
    prometheus_binary,
    wait_until,
    worker_process,
)
from tests.chart_tools import ALERTS, REPO

RELEASE = "live"
NAMESPACE = "alerts-live"
API_JOB = f"{RELEASE}-memstack-api"
WORKER_JOB = f"{RELEASE}-memstack-worker"
LIVE_VALUES = Path(__file__).with_name("live-values.yaml")
QUEUE = "memstack:ingest"
QUEUE_MAX_SIZE = 20
REDIS_DB = 14  # other suites use 0 and 3-6
SCRAPE_INTERVAL = "1s"
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape would be 4 s; keep a margin
# Generous for a loaded machine; the measured times are printed (typically 5-15 s).
# Recovery from the database outage includes psycopg_pool's reconnect backoff.
FIRE_TIMEOUT = 90.0
RESOLVE_TIMEOUT = 120.0

pytestmark = pytest.mark.timeout(600)


@dataclass
class Traffic:
    """User requests (list projects) and a readiness probe, in background threads."""

    base_url: str
    key: str
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def _users(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            while not self.stop.is_set():
                try:
                    client.get("/api/v1/projects", headers={"Authorization": f"Bearer {self.key}"})
                except httpx.HTTPError:
                    time.sleep(0.2)
                self.stop.wait(0.05)

    def _probe(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while not self.stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/ready")
                self.stop.wait(1.0)

    def start(self) -> None:
        self.threads = [
            threading.Thread(target=t, daemon=True) for t in (self._users, self._users, self._probe)
        ]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


@dataclass
class Stack:
    work: Path
    env: dict[str, str]
    api: Process
    worker: Process
    api_url: str
    prometheus: PrometheusApi
    pg_proxy: TcpProxy
    neo4j_proxy: TcpProxy
    worker_graph_proxy: TcpProxy
    redis: redis.Redis
    rules: dict[str, AlertSpec]
    spec: dict[str, Any]
    key: str
    project: str = ""

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def start_api(self) -> None:
        self.api.start()
        wait_until("the API's /health", lambda: httpx.get(f"{self.api_url}/health").status_code == 200, 60)

    def start_worker(self) -> None:
        self.worker.start()

    @property
    def watch(self) -> AlertWatch:
        return AlertWatch(
            self.prometheus, self.rules, TIMINGS, fire_timeout=FIRE_TIMEOUT, resolve_timeout=RESOLVE_TIMEOUT
        )

    def queue_length(self) -> int:
        return int(self.redis.llen(f"rq:queue:{QUEUE}"))


def _wait_healthy(stack: Stack, timeout: float = 90) -> None:
    def healthy() -> bool:
        targets = stack.prometheus.targets()
        ours = [t for t in targets if t["labels"]["job"] in {API_JOB, WORKER_JOB}]
        ready = httpx.get(f"{stack.api_url}/ready", timeout=5).status_code == 200
        return (
            ready
            and len(ours) == 2
            and all(t["health"] == "up" for t in ours)
            and not stack.prometheus.alerts()
        )

    try:
        wait_until("a healthy stack with no active alert", healthy, timeout, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; alerts: {json.dumps(stack.prometheus.alerts())[:2000]}") from None


def _create_database(env: dict[str, str], name: str) -> None:
    conninfo = psycopg.conninfo.make_conninfo(
        host="127.0.0.1",
        port=int(env.get("POSTGRES_PORT", "5432")),
        dbname=env.get("POSTGRES_DB", "memstack"),
        user=env.get("POSTGRES_USER", "memstack"),
        password=env["POSTGRES_PASSWORD"],
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(env: dict[str, str], name: str) -> None:
    conninfo = psycopg.conninfo.make_conninfo(
        host="127.0.0.1",
        port=int(env.get("POSTGRES_PORT", "5432")),
        dbname=env.get("POSTGRES_DB", "memstack"),
        user=env.get("POSTGRES_USER", "memstack"),
        password=env["POSTGRES_PASSWORD"],
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prometheus_config(api_metrics: int, worker_metrics: int) -> dict[str, Any]:
    def job(name: str, port: int, component: str) -> dict[str, Any]:
        # In Kubernetes the ServiceMonitor makes job=<service name> and adds namespace and pod.
        return {
            "job_name": name,
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{port}"],
                    "labels": {"namespace": NAMESPACE, "pod": f"{name}-0", "container": component},
                }
            ],
        }

    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": "1s",
        },
        "rule_files": ["rules.yaml"],
        "scrape_configs": [job(API_JOB, api_metrics, "api"), job(WORKER_JOB, worker_metrics, "worker")],
    }


@pytest.fixture(scope="module")
def exclusive() -> Iterator[None]:
    """One live alert test at a time on this machine: they would share Redis DB 14 and its
    `rq suspend` flag (`make test` runs of other checkouts use the same servers)."""
    path = Path(tempfile.gettempdir()) / "memstack-alerts-live.lock"
    with path.open("w") as lock:
        deadline = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another live alert test holds {path}") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, exclusive: None) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("alerts-live")
    base = local_environ()
    database = f"memstack_alerts_{uuid.uuid4().hex[:10]}"
    processes: list[Process] = []
    proxies: list[TcpProxy] = []
    traffic: Traffic | None = None
    prometheus_api: PrometheusApi | None = None
    connection = redis.Redis(
        host=base.get("REDIS_HOST", "127.0.0.1"),
        port=int(base.get("REDIS_PORT", "6379")),
        password=base.get("REDIS_PASSWORD") or None,
        db=REDIS_DB,
    )
    _create_database(base, database)
    try:
        connection.flushdb()
        pg_proxy = TcpProxy(int(base.get("POSTGRES_PORT", "5432")))
        neo4j_proxy = TcpProxy(int(base.get("NEO4J_BOLT_PORT", "7687")))
        worker_graph_proxy = TcpProxy(int(base.get("NEO4J_BOLT_PORT", "7687")))
        proxies += [pg_proxy, neo4j_proxy, worker_graph_proxy]
        for proxy in proxies:
            proxy.start()
        env = {
            **base,
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(pg_proxy.port),
            "POSTGRES_DB": database,
            "NEO4J_URI": f"bolt://127.0.0.1:{neo4j_proxy.port}",
            "REDIS_DB": str(REDIS_DB),
            "QUEUE_MAX_SIZE": str(QUEUE_MAX_SIZE),
            "RATE_LIMIT_PER_MINUTE": "0",
            # The API sets a job's retries when it queues it: none, so that a job that cannot
            # write the graph fails at once (after the Neo4j driver's own retries).
            "JOB_MAX_RETRIES": "0",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "INFO",
            "ENVIRONMENT": "alerts-live",
        }
        memstack = str(Path(sys.executable).with_name("memstack"))
        subprocess.run([memstack, "migrate"], env=env, cwd=REPO, check=True, capture_output=True, timeout=120)

        # The rules exactly as the chart renders them, with the live windows.
        spec = render_rule_spec(["-f", str(LIVE_VALUES)], release=RELEASE, namespace=NAMESPACE)
        (work / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        rules = {name: AlertSpec.of(rule) for name, rule in alert_rules(spec).items()}

        api_port, api_metrics, worker_metrics, prom_port = free_port(), free_port(), free_port(), free_port()
        # The worker has its own way to Neo4j (cut in the job-failure phase) and goes straight to
        # PostgreSQL: only the API loses its databases in the outage.
        worker_env = {
            **env,
            "POSTGRES_PORT": base.get("POSTGRES_PORT", "5432"),
            "NEO4J_URI": f"bolt://127.0.0.1:{worker_graph_proxy.port}",
        }
        api = api_process(work, api_port, api_metrics, env)
        worker = worker_process(work, worker_metrics, worker_env)
        processes += [api, worker]
        (work / "prometheus.yml").write_text(
            yaml.safe_dump(_prometheus_config(api_metrics, worker_metrics), sort_keys=False), encoding="utf-8"
        )
        prometheus = Process(
            "prometheus",
            [
                prometheus_binary(),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                "--storage.tsdb.retention.time=1h",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            {"PATH": os.environ.get("PATH", "")},
            work / "prometheus.log",
        )
        processes.append(prometheus)
        stack = Stack(
            work=work,
            env=env,
            api=api,
            worker=worker,
            api_url=f"http://127.0.0.1:{api_port}",
            prometheus=(prometheus_api := PrometheusApi(f"http://127.0.0.1:{prom_port}")),
            pg_proxy=pg_proxy,
            neo4j_proxy=neo4j_proxy,
            worker_graph_proxy=worker_graph_proxy,
            redis=connection,
            rules=rules,
            spec=spec,
            key=env["MEMSTACK_BOOTSTRAP_API_KEY"],
        )
        stack.start_api()
        stack.start_worker()
        prometheus.start()
        wait_until(
            "Prometheus to be ready",
            lambda: httpx.get(f"{stack.prometheus.base_url}/-/ready").status_code == 200,
            60,
        )
        created = httpx.post(
            f"{stack.api_url}/api/v1/projects", json={"name": "alerts-live"}, headers=stack.auth()
        )
        assert created.status_code == 201, created.text
        stack.project = created.json()["id"]
        traffic = Traffic(stack.api_url, stack.key)
        traffic.start()
        yield stack
    finally:
        if traffic is not None:
            traffic.close()
        for process in reversed(processes):
            process.stop()
        for proxy in proxies:
            proxy.close()
        if prometheus_api is not None:
            prometheus_api.close()
        with contextlib.suppress(redis.RedisError):
            resume(connection)
            connection.flushdb()
        connection.close()
        _drop_database(base, database)


def _post_episode(stack: Stack, text: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/api/v1/projects/{stack.project}/episodes",
        json={"content": text},
        headers=stack.auth(),
        timeout=10,
    )


def test_healthy(stack: Stack) -> None:
    started = time.monotonic()
    _wait_healthy(stack)

    # Every rule has been evaluated, none with an error.
    def evaluated() -> bool:
        return all(r["health"] != "unknown" for r in stack.prometheus.rules())

    wait_until("every rule to be evaluated", evaluated, 30)
    rules = stack.prometheus.rules()
    assert {r["name"] for r in rules if r["type"] == "alerting"} == set(ALERTS.values())
    for rule in rules:
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule
    # Work flows: episodes are ingested and the worker reports the jobs.
    for n in range(3):
        assert (
            _post_episode(stack, f"Healthy {n}: Ada Lovelace met Charles Babbage in London.").status_code
            == 202
        )
    wait_until(
        "jobs reported by the worker",
        lambda: bool(
            stack.prometheus.query(f'memstack_jobs_total{{job="{WORKER_JOB}",status="succeeded"}} > 0')
        ),
        60,
    )
    # The SSE route's label is the one the p99 alert (and the dashboard) exclude.
    latency_expr = stack.rules["MemStackApiHighLatencyP99"].expr
    events = f"{stack.api_url}/api/v1/projects/{stack.project}/events"
    with (
        httpx.Client(timeout=httpx.Timeout(10.0, read=2.0)) as client,
        client.stream("GET", events, headers=stack.auth()) as response,
    ):
        assert response.status_code == 200
        active = f'sse_connections_active{{job="{API_JOB}"}} > 0'
        wait_until(
            "the open stream in sse_connections_active", lambda: bool(stack.prometheus.query(active)), 15
        )
    routes: list[str] = []

    def sse_route_seen() -> bool:
        found = stack.prometheus.query(
            f'http_request_duration_seconds_count{{job="{API_JOB}",route=~".*/events"}}'
        )
        routes[:] = [r["metric"]["route"] for r in found]
        return bool(routes)

    wait_until("the SSE request in the latency histogram", sse_route_seen, 30)
    assert all(f'route!="{route}"' in latency_expr for route in routes), (routes, latency_expr)
    stack.watch.record("healthy", "stack healthy, rules evaluated, SSE checked", time.monotonic() - started)


def test_dependency_outage_fires_error_ratio_and_dependency_down(stack: Stack) -> None:
    _wait_healthy(stack)
    cut = time.monotonic()
    stack.pg_proxy.cut()
    stack.neo4j_proxy.cut()
    try:
        fired = stack.watch.wait_firing(
            "outage",
            cut,
            ("MemStackApiHighErrorRate", {"namespace": NAMESPACE, "job": API_JOB}),
            ("MemStackDependencyDown", {"namespace": NAMESPACE, "dependency": "postgres"}),
            ("MemStackDependencyDown", {"namespace": NAMESPACE, "dependency": "neo4j"}),
        )
        ratio = next(a for k, a in fired.items() if k.startswith("MemStackApiHighErrorRate"))
        assert float(ratio["value"]) > stack.rules["MemStackApiHighErrorRate"].threshold
        # Redis is still up: no alert for it.
        assert not matching(stack.prometheus.alerts(), "MemStackDependencyDown", {"dependency": "redis"})
    finally:
        stack.pg_proxy.restore()
        stack.neo4j_proxy.restore()
    restored = time.monotonic()
    stack.watch.wait_resolved("outage", restored, "MemStackDependencyDown", "MemStackApiHighErrorRate")
    _wait_healthy(stack)


# Panels that must show data on a working stack with traffic (the others read cAdvisor,
# kube-state-metrics or failed jobs, which this loopback stack does not have).
CORE_PANELS = {
    "Requests per second by route",
    "Error ratio (5xx) by route",
    "Responses by status",
    "Latency p50 / p99 by route (SSE excluded)",
    "Requests in progress",
    "SSE connections",
    "Dependencies up",
    "Queue depth vs max",
    "Jobs per second by status",
    "Job duration p50 / p99",
    "Busy workers / heartbeat age",
    "Targets up",
    "Episodes accepted / rejected",
}


def test_dashboard_queries_run_and_core_panels_have_data(stack: Stack) -> None:
    # The template variables resolve to this release's jobs.
    assert NAMESPACE in stack.prometheus.label_values("namespace", "http_requests_total")
    assert API_JOB in stack.prometheus.label_values("job", f'http_requests_total{{namespace="{NAMESPACE}"}}')
    assert WORKER_JOB in stack.prometheus.label_values(
        "job", f'memstack_queue_size{{namespace="{NAMESPACE}"}}'
    )
    queries = dashboard_queries(
        namespace=NAMESPACE, api_job=API_JOB, worker_job=WORKER_JOB, rate_interval=RATE_INTERVAL
    )
    titles = {title for title, _ in queries}
    assert titles >= CORE_PANELS, CORE_PANELS - titles
    with_data: set[str] = set()
    for title, expr in queries:
        if stack.prometheus.query(expr):  # raises on any PromQL error
            with_data.add(title)
    empty = sorted(CORE_PANELS - with_data)
    count = len(queries)
    assert count >= 15
    assert not empty, f"core panels without data: {empty}"
    stack.watch.record("dashboard", f"{count} dashboard queries ran", 0.0)


def test_queue_backlog_fires_queue_near_full(stack: Stack) -> None:
    _wait_healthy(stack)
    threshold = stack.rules["MemStackQueueNearFull"].threshold
    target = math.floor(QUEUE_MAX_SIZE * threshold) + 2
    assert target < QUEUE_MAX_SIZE, "the backlog must stay below the limit (503s are another alert's)"
    # The worker stays up and scraped (it exports the queue metrics) but takes no more jobs.
    suspend(stack.redis)
    started = time.monotonic()
    try:
        n = 0
        while stack.queue_length() < target:
            response = _post_episode(stack, f"Backlog {n}: Grace Hopper visited Harvard with Howard Aiken.")
            assert response.status_code == 202, response.text
            n += 1
            assert n < 3 * QUEUE_MAX_SIZE, "the suspended worker keeps taking jobs"
        fired = stack.watch.wait_firing(
            "backlog", started, ("MemStackQueueNearFull", {"namespace": NAMESPACE, "queue": QUEUE})
        )
        assert float(next(iter(fired.values()))["value"]) > threshold
    finally:
        resume(stack.redis)
    resumed = time.monotonic()
    wait_until("the queue to drain", lambda: stack.queue_length() == 0, 60)
    stack.watch.record("backlog", "queue drained", time.monotonic() - resumed)
    stack.watch.wait_resolved("backlog", resumed, "MemStackQueueNearFull")
    _wait_healthy(stack)


def test_graph_writes_failing_fire_job_failure_ratio(stack: Stack) -> None:
    _wait_healthy(stack)
    cut = time.monotonic()
    stack.worker_graph_proxy.cut()
    try:
        for n in range(4):
            response = _post_episode(stack, f"Failing {n}: Alan Turing worked with Joan Clarke at Bletchley.")
            assert response.status_code == 202, response.text
        fired = stack.watch.wait_firing(
            "job failures",
            cut,
            ("MemStackJobFailureRatioHigh", {"namespace": NAMESPACE, "task": "ingest_episodes"}),
            # Each attempt takes the Neo4j driver's 15 s of retries (and back-off) to fail, and the
            # first failure is invisible to rate(): the failed series is born at 1, not 0.
            timeout=180,
        )
        assert (
            float(next(iter(fired.values()))["value"]) > stack.rules["MemStackJobFailureRatioHigh"].threshold
        )
        # The API still reaches Neo4j: this is the worker's problem, not a dependency outage.
        assert not stack.prometheus.active("MemStackDependencyDown")
    finally:
        stack.worker_graph_proxy.restore()
    restored = time.monotonic()
    # Fresh work succeeds again; the failures leave the rate window.
    assert _post_episode(stack, "Recovered: Ada Lovelace wrote to Mary Somerville.").status_code == 202
    stack.watch.wait_resolved("job failures", restored, "MemStackJobFailureRatioHigh")
    _wait_healthy(stack)


def test_targets_down_fire_availability_alerts(stack: Stack) -> None:
    _wait_healthy(stack)
    killed = time.monotonic()
    stack.api.stop(signal.SIGKILL)
    stack.worker.stop(signal.SIGKILL)
    try:
        fired = stack.watch.wait_firing(
            "targets down",
            killed,
            ("MemStackApiDown", {"namespace": NAMESPACE, "job": API_JOB}),
            ("MemStackWorkerDown", {"namespace": NAMESPACE, "job": WORKER_JOB}),
        )
        assert all(float(a["value"]) == 0 for a in fired.values())
    finally:
        restarted = time.monotonic()
        stack.start_api()
        stack.start_worker()
    stack.watch.wait_resolved("targets down", restarted, "MemStackApiDown", "MemStackWorkerDown")
    _wait_healthy(stack)
