"""The chart's monitoring as a kube-prometheus-stack user runs it, on the real node.

ci/e2e/monitoring.sh runs the Prometheus Operator, a Prometheus it manages (selecting
ServiceMonitors and PrometheusRules labelled `release: kube-prometheus-stack`, as
kube-prometheus-stack's does), kube-state-metrics and the kubelet's cAdvisor scrape, and
exports MEMSTACK_NODE_PROMETHEUS_URL. Here: one prod release with its alerts tuned as an
operator tunes them (short windows and `for`, so that a fault shows in seconds; the queue's
threshold lowered for a small queue, every other threshold the prod values' own), a Neo4j
path whose plug the tests can pull or slow down, and user traffic sent to the API pods.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.alerts.alert_watch import AlertWatch, Timings
from tests.alerts.chart_rules import AlertSpec, alert_rules
from tests.alerts.live_stack import PrometheusApi, TcpProxy
from tests.node.node import Node
from tests.node.release import API, NodeRelease
from tests.node.traffic import setup_project

# A namespace of the run's own: a Prometheus keeps the series of a removed scrape pool (an
# uninstalled release) for its 5-minute lookback, and those of an earlier run must not count.
NAMESPACE = f"memstack-mon-{uuid.uuid4().hex[:6]}"
API_JOB = "memstack-api"
WORKER_JOB = "memstack-worker"
QUEUE = "memstack:ingest"
QUEUE_MAX_SIZE = 40
SCRAPE = "5s"  # the chart's ServiceMonitors; the cluster's Prometheus evaluates every 5 s too
WINDOW = "30s"  # rate windows: six scrapes
HOLD = "5s"  # `for`: one evaluation after the condition holds
# (alert key, value, setting)
_TUNING: list[tuple[str, str, str]] = [
    *[
        (key, "for", HOLD)
        for key in (
            "apiHighErrorRate",
            "apiHighLatencyP99",
            "apiDown",
            "workerDown",
            "queueNearFull",
            "highMemoryUsage",
            "highCpuUsage",
            "dependencyDown",
            "jobFailureRatioHigh",
        )
    ],
    *[
        (key, "window", WINDOW)
        for key in ("apiHighErrorRate", "apiHighLatencyP99", "highCpuUsage", "jobFailureRatioHigh")
    ],
    # A queue of 40 crosses half without reaching the limit (503s are another alert's).
    ("queueNearFull", "threshold", "0.5"),
]


def overrides(neo4j_uri: str) -> list[str]:
    sets = {
        "neo4j.uri": neo4j_uri,
        "serviceMonitor.interval": SCRAPE,
        "serviceMonitor.scrapeTimeout": "4s",
        "config.queueMaxSize": str(QUEUE_MAX_SIZE),
        # A job that cannot write the graph fails at once (after the driver's own retries).
        "config.jobMaxRetries": "0",
        "config.rateLimitPerMinute": "0",
        **{f"prometheusRule.alerts.{key}.{name}": value for key, name, value in _TUNING},
    }
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def api_pod_urls(node: Node) -> list[str]:
    """The API pods' own addresses (ready or not), as their clients reach them."""
    return [
        f"http://{p['status']['podIP']}:8000"
        for p in node.pods(NAMESPACE, API)
        if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
    ]


@dataclass
class PodTraffic:
    """Users of the API, sent to the API pods themselves (their addresses refreshed as pods come
    and go): during a database outage the pods leave the Service, but their clients (an
    ingress, a retrying SDK) keep sending, and the pods keep counting."""

    node: Node
    key: str
    project: str
    workers: int = 2
    search: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    _urls: list[str] = field(default_factory=list)

    def _refresh(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                self._urls = api_pod_urls(self.node)
            self.stop.wait(3.0)

    def _user(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=20.0, headers=headers) as client:
            i = n
            while not self.stop.is_set():
                urls = self._urls
                if not urls:
                    self.stop.wait(0.5)
                    continue
                base = urls[i % len(urls)]
                i += 1
                try:
                    if self.search and i % 2:
                        client.post(
                            f"{base}/api/v1/projects/{self.project}/search",
                            json={"query": "Ada Lovelace", "limit": 5},
                        )
                    else:
                        client.get(f"{base}/api/v1/projects/{self.project}")
                except httpx.HTTPError:
                    self.stop.wait(0.2)

    def __enter__(self) -> PodTraffic:
        self.threads = [threading.Thread(target=self._refresh, daemon=True)]
        self.threads += [
            threading.Thread(target=self._user, args=(n,), daemon=True) for n in range(self.workers)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


@dataclass
class Monitored:
    """The release under the cluster's monitoring, and what the tests pull on."""

    release: NodeRelease
    prometheus: PrometheusApi
    neo4j: TcpProxy
    watch: AlertWatch
    key: str
    project: str

    def traffic(self, workers: int = 2, *, search: bool = False) -> PodTraffic:
        return PodTraffic(self.release.node, self.key, self.project, workers=workers, search=search)

    def post_episode(self, text: str) -> httpx.Response:
        """One episode, to an API pod directly (the Service drops pods that are not ready)."""
        return httpx.post(
            f"{api_pod_urls(self.release.node)[0]}/api/v1/projects/{self.project}/episodes",
            json={"content": text},
            headers={"Authorization": f"Bearer {self.key}", "Idempotency-Key": uuid.uuid4().hex},
            timeout=20.0,
        )

    def rules(self) -> dict[str, AlertSpec]:
        obj = self.release.node.cluster.must_get("prometheusrule", "memstack", NAMESPACE)
        return {name: AlertSpec.of(rule) for name, rule in alert_rules(obj["spec"]).items()}

    def scale(self, component: str, replicas: int) -> None:
        self.release.node.cluster.kubectl_run(
            "-n", NAMESPACE, "scale", f"deployment/memstack-{component}", f"--replicas={replicas}"
        )

    def resize(self, pod: str, container: str, resources: dict[str, dict[str, str]]) -> None:
        """Change a running container's requests and limits in place (no restart): the kubelet
        rewrites its cgroup, kube-state-metrics reports the new limits."""
        patch = {"spec": {"containers": [{"name": container, "resources": resources}]}}
        self.release.node.cluster.kubectl_run(
            "-n", NAMESPACE, "patch", "pod", pod, "--subresource", "resize", "--patch", json.dumps(patch)
        )

    def query_one(self, expr: str) -> float:
        result = self.prometheus.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])


def prometheus_from_environ() -> PrometheusApi:
    url = os.environ.get("MEMSTACK_NODE_PROMETHEUS_URL")
    if not url:
        pytest.fail("MEMSTACK_NODE_PROMETHEUS_URL is not set: run through `make node-e2e`")
    return PrometheusApi(url)


@contextlib.contextmanager
def monitored_release(node: Node, timings: Timings) -> Iterator[Monitored]:
    prometheus = prometheus_from_environ()
    # The pods reach Neo4j through this proxy on the bridge address; TLS runs end to end
    # through it (the server certificate names the bridge address).
    neo4j = TcpProxy(node.tls.neo4j_port, target_host=node.ip, listen_host=node.ip)
    neo4j.start()
    release = NodeRelease("prod", 4, NAMESPACE, node, extra=overrides(f"bolt+s://{node.ip}:{neo4j.port}"))
    try:
        res = release.install()
        assert res.returncode == 0, release.explain(res)
        key, project = setup_project(release.api_url(), node.bootstrap_key, name="monitored")
        watch = AlertWatch(prometheus, {}, timings, scope={"namespace": NAMESPACE})
        monitored = Monitored(release, prometheus, neo4j, watch, key, project)
        watch.rules = monitored.rules()
        yield monitored
    finally:
        neo4j.close()
        prometheus.close()
        release.helm("uninstall", "memstack", "-n", NAMESPACE, "--wait", "--timeout", "3m", check=False)
        node.cluster.kubectl_run("delete", "namespace", NAMESPACE, "--timeout=180s", check=False, timeout=200)
        node.drop_database(release.endpoints, release.database)


def value_of(alert: dict[str, Any]) -> float:
    return float(alert["value"])
