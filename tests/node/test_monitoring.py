"""The chart's monitoring proven in the cluster: the Prometheus Operator picks up the chart's
ServiceMonitors and PrometheusRule by the prod values' `release` label, scrapes real pods
through their Services, and every alert fires on a real fault and resolves after recovery.

The phases run in file order on one prod release (tests/node/monitoring.py), each from a
healthy state back to it; the seconds from each fault and each recovery to the alert's change
are printed at the end of the run:
  targets      the operator-generated config scrapes 2 API and 1 worker targets, all up, with
               the jobs the rules select; cAdvisor and kube-state-metrics series carry the pods'
               labels; every rule loaded and evaluated without error; nothing fires
  outage       Neo4j unreachable (its listener closed): MemStackDependencyDown (neo4j) from
               every pod, MemStackApiHighErrorRate (searches answer 503) and
               MemStackJobFailureRatioHigh (episodes accepted meanwhile fail, visibly)
  latency      every Neo4j answer held back 1.2 s: MemStackApiHighLatencyP99 at the prod
               threshold (1 s)
  backlog      the worker suspended (alive and scraped, taking no jobs) while episodes are
               posted: MemStackQueueNearFull
  resources    one API pod's limits squeezed in place (0.2 cores; memory 7 % above its working
               set) under user load: MemStackHighCpuUsage and MemStackHighMemoryUsage at the
               prod thresholds (cAdvisor usage against kube-state-metrics' limits); limits
               restored: both resolve, the container never restarted
  pods gone    the API and then the worker scaled to 0: MemStackApiDown, MemStackWorkerDown
  dashboard    every query of the Grafana dashboard returns at least one series
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import redis
from rq.suspension import resume, suspend

from tests.alerts.alert_watch import dashboard_queries
from tests.alerts.live_stack import wait_until
from tests.node.conftest import ALERT_TIMINGS
from tests.node.monitoring import (
    API_JOB,
    NAMESPACE,
    QUEUE,
    QUEUE_MAX_SIZE,
    WORKER_JOB,
    Monitored,
    monitored_release,
    value_of,
)
from tests.node.node import Node
from tests.node.release import API, WORKER

pytestmark = pytest.mark.timeout(1500)
# The chart's alerts: every one loaded, and every one fired below.
ALL_ALERTS = {
    "MemStackApiHighErrorRate",
    "MemStackApiHighLatencyP99",
    "MemStackApiDown",
    "MemStackWorkerDown",
    "MemStackQueueNearFull",
    "MemStackHighMemoryUsage",
    "MemStackHighCpuUsage",
    "MemStackDependencyDown",
    "MemStackJobFailureRatioHigh",
}
# The squeezed memory limit: the working set is this share of it (above the 0.9 threshold).
SQUEEZE = 0.93


@pytest.fixture(scope="module")
def mon(node: Node) -> Iterator[Monitored]:
    with monitored_release(node, ALERT_TIMINGS) as m:
        yield m


def wait_healthy(mon: Monitored, timeout: float = 180) -> None:
    """All targets of the release up and no alert of it active (pending or firing)."""

    def healthy() -> bool:
        ours = [t for t in mon.prometheus.targets() if t["labels"].get("namespace") == NAMESPACE]
        jobs = sorted(t["labels"]["job"] for t in ours if t["health"] == "up")
        return jobs == [API_JOB, API_JOB, WORKER_JOB] and not mon.watch.ours()

    try:
        wait_until("a healthy release with no active alert", healthy, timeout, interval=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; alerts: {mon.watch.ours()}") from None


def redis_of(mon: Monitored) -> redis.Redis:
    n, ep = mon.release.node, mon.release.endpoints
    return redis.Redis(
        host="127.0.0.1",
        port=ep.redis_port,
        db=mon.release.redis_db,
        password=n.passwords["redis"],
        ssl=True,
        ssl_ca_certs=ep.ca_file,
    )


def test_a_targets_scraped_rules_loaded_nothing_fires(mon: Monitored) -> None:
    started = time.monotonic()
    wait_healthy(mon)
    targets = [t for t in mon.prometheus.targets() if t["labels"].get("namespace") == NAMESPACE]
    pools = {t["scrapePool"] for t in targets}
    assert pools == {
        f"serviceMonitor/{NAMESPACE}/memstack-api/0",
        f"serviceMonitor/{NAMESPACE}/memstack-worker/0",
    }, pools
    api_pods = {p["status"]["podIP"] for p in mon.release.node.pods(NAMESPACE, API)}
    scraped = {t["labels"]["instance"].rsplit(":", 1)[0] for t in targets if t["labels"]["job"] == API_JOB}
    assert scraped == api_pods
    # cAdvisor (through the kubelet) and kube-state-metrics know the pods by the labels the rules join on.
    for component in ("api", "worker"):
        selector = f'namespace="{NAMESPACE}",pod=~"memstack-{component}-.*",container="{component}"'
        assert mon.prometheus.query(f"container_memory_working_set_bytes{{{selector}}}"), component
        assert mon.prometheus.query(f"container_cpu_usage_seconds_total{{{selector}}}"), component
        assert mon.prometheus.query(f'kube_pod_container_resource_limits{{{selector},resource="memory"}}')

    # The chart's rules, loaded and evaluated without error.
    def ours() -> list[dict[str, object]]:
        return [
            r
            for r in mon.prometheus.rules()
            if r.get("type") == "alerting" and str(r["name"]).startswith("MemStack")
        ]

    def evaluated() -> bool:
        rules = ours()
        return bool(rules) and all(r["health"] == "ok" for r in rules)

    wait_until("the chart's rules to be evaluated", evaluated, 60)
    assert {str(r["name"]) for r in ours()} == ALL_ALERTS
    for rule in ours():
        assert not rule.get("lastError"), rule
    mon.watch.record("targets", "targets up, rules evaluated, no alert", time.monotonic() - started)


def test_b_neo4j_outage(mon: Monitored) -> None:
    wait_healthy(mon)
    threshold = mon.watch.rules["MemStackJobFailureRatioHigh"].threshold
    cut = time.monotonic()
    mon.neo4j.cut()
    try:
        with mon.traffic(search=True):
            for n in range(4):
                response = mon.post_episode(f"Outage {n}: Alan Turing worked with Joan Clarke at Bletchley.")
                assert response.status_code == 202, response.text
            fired = mon.watch.wait_firing(
                "outage",
                cut,
                ("MemStackDependencyDown", {"namespace": NAMESPACE, "dependency": "neo4j"}),
                ("MemStackApiHighErrorRate", {"namespace": NAMESPACE, "job": API_JOB}),
                ("MemStackJobFailureRatioHigh", {"namespace": NAMESPACE, "task": "ingest_episodes"}),
                timeout=240,
            )
        assert value_of(next(a for k, a in fired.items() if "JobFailure" in k)) > threshold
        active = {
            a["labels"].get("dependency")
            for a in mon.watch.ours()
            if a["labels"]["alertname"] == "MemStackDependencyDown"
        }
        assert active == {"neo4j"}, active
    finally:
        mon.neo4j.restore()
    restored = time.monotonic()
    assert mon.post_episode("Recovered: Ada Lovelace wrote to Mary Somerville.").status_code == 202
    mon.watch.wait_resolved(
        "outage",
        restored,
        "MemStackDependencyDown",
        "MemStackApiHighErrorRate",
        "MemStackJobFailureRatioHigh",
        timeout=240,
    )
    wait_healthy(mon)


def test_c_slow_graph_fires_p99_latency(mon: Monitored) -> None:
    wait_healthy(mon)
    slowed = time.monotonic()
    mon.neo4j.delay = 1.2
    try:
        with mon.traffic(workers=4, search=True):
            fired = mon.watch.wait_firing(
                "latency", slowed, ("MemStackApiHighLatencyP99", {"namespace": NAMESPACE, "job": API_JOB})
            )
        assert value_of(next(iter(fired.values()))) > mon.watch.rules["MemStackApiHighLatencyP99"].threshold
    finally:
        mon.neo4j.delay = 0.0
    recovered = time.monotonic()
    with mon.traffic(search=True):
        mon.watch.wait_resolved("latency", recovered, "MemStackApiHighLatencyP99")
    wait_healthy(mon)


def test_d_backlog_fires_queue_near_full(mon: Monitored) -> None:
    wait_healthy(mon)
    threshold = mon.watch.rules["MemStackQueueNearFull"].threshold
    target = math.floor(QUEUE_MAX_SIZE * threshold) + 2
    connection = redis_of(mon)
    suspend(connection)
    started = time.monotonic()
    try:
        n = 0
        while connection.llen(f"rq:queue:{QUEUE}") < target:
            response = mon.post_episode(f"Backlog {n}: Grace Hopper visited Harvard with Howard Aiken.")
            assert response.status_code == 202, response.text
            n += 1
            assert n < 3 * QUEUE_MAX_SIZE, "the suspended worker keeps taking jobs"
        fired = mon.watch.wait_firing(
            "backlog", started, ("MemStackQueueNearFull", {"namespace": NAMESPACE, "queue": QUEUE})
        )
        assert value_of(next(iter(fired.values()))) > threshold
    finally:
        resume(connection)
    resumed = time.monotonic()
    try:
        mon.watch.wait_resolved("backlog", resumed, "MemStackQueueNearFull")
    finally:
        connection.close()
    wait_healthy(mon)


def test_e_limits_too_small_under_load_fire_cpu_and_memory(mon: Monitored) -> None:
    wait_healthy(mon)
    pod = mon.release.node.pods(NAMESPACE, API)[0]
    name = pod["metadata"]["name"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "api")
    original = {"requests": container["resources"]["requests"], "limits": container["resources"]["limits"]}
    selector = f'namespace="{NAMESPACE}",pod="{name}",container="api"'
    working_set = mon.query_one(f"container_memory_working_set_bytes{{{selector}}}")
    for alert in ("MemStackHighCpuUsage", "MemStackHighMemoryUsage"):
        assert mon.watch.rules[alert].threshold == 0.9, "the prod threshold"
    # Limits an operator got wrong: 0.2 cores, and memory a little above what the pod uses.
    memory = f"{math.ceil(working_set / SQUEEZE / 2**20)}Mi"
    squeezed = time.monotonic()
    mon.resize(
        name,
        "api",
        {
            "requests": {"cpu": original["requests"]["cpu"], "memory": memory},
            "limits": {"cpu": "200m", "memory": memory},
        },
    )
    try:
        with mon.traffic(workers=4):
            mon.watch.wait_firing(
                "resources",
                squeezed,
                ("MemStackHighCpuUsage", {"namespace": NAMESPACE, "pod": name, "container": "api"}),
                ("MemStackHighMemoryUsage", {"namespace": NAMESPACE, "pod": name, "container": "api"}),
                timeout=180,
            )
    finally:
        restored = time.monotonic()
        mon.resize(name, "api", original)
    mon.watch.wait_resolved("resources", restored, "MemStackHighCpuUsage", "MemStackHighMemoryUsage")
    after = mon.release.node.cluster.must_get("pod", name, NAMESPACE)
    status = next(c for c in after["status"]["containerStatuses"] if c["name"] == "api")
    assert status["restartCount"] == 0, f"the squeezed container restarted: {status}"
    wait_healthy(mon)


def test_f_pods_gone_fire_availability_alerts(mon: Monitored) -> None:
    wait_healthy(mon)
    removed = time.monotonic()
    mon.scale("api", 0)
    mon.scale("worker", 0)
    try:
        fired = mon.watch.wait_firing(
            "pods gone",
            removed,
            ("MemStackApiDown", {"namespace": NAMESPACE, "job": API_JOB}),
            ("MemStackWorkerDown", {"namespace": NAMESPACE, "job": WORKER_JOB}),
        )
        assert all(value_of(a) == 0 for a in fired.values())
    finally:
        restored = time.monotonic()
        mon.scale("api", 2)
        mon.scale("worker", 1)
    mon.release.node.assert_pods_ready(NAMESPACE, API, 2)
    mon.release.node.assert_pods_ready(NAMESPACE, WORKER, 1)
    mon.watch.wait_resolved("pods gone", restored, "MemStackApiDown", "MemStackWorkerDown")
    wait_healthy(mon)


def test_g_every_dashboard_query_has_data(mon: Monitored) -> None:
    with mon.traffic(search=True):
        time.sleep(15)  # three scrapes of fresh traffic for the rate() panels
        queries = dashboard_queries(
            namespace=NAMESPACE, api_job=API_JOB, worker_job=WORKER_JOB, rate_interval="1m"
        )
        empty = [(title, expr) for title, expr in queries if not mon.prometheus.query(expr)]
    assert len(queries) >= 20
    assert not empty, f"dashboard queries without data: {empty}"
    mon.watch.record("dashboard", f"{len(queries)} dashboard queries, each with data", 0.0)
