"""`promtool test rules` cases for every alert, generated from the rendered rules.

Thresholds, `for` durations, rate windows, labels and annotations are read from the rendered
rule, so each values file (and any `--set`) is tested with its own numbers. For every alert:

- *breach*: series that break the threshold, with extra labels a real scrape carries
  (instance, pod, container ids, several pods); the alert is pending but not firing one
  evaluation before `for` elapses, and firing right when it does, with exactly the expected
  labels (aggregation labels + severity + extra labels) and annotations (runbook_url and the
  description expanded with the value Prometheus computes);
- *healthy*: the same metrics on the good side of the threshold (plus traps: the SSE route for
  the latency alert, pod-level cgroup series and other releases' pods for the resource alerts,
  one pod of two seeing a dependency down): nothing fires;
- availability alerts also fire when every target is gone (series absent from the start) and
  when the targets disappear (stale markers, as Prometheus writes when a target vanishes).

Timing: evaluation and sample interval STEP; `t0` is the first evaluation at which the
expression is true. Gauges are true from the first sample (t0 = 0). Ratios of two rates are
true from the first evaluation with two samples (t0 = STEP: the extrapolation factors cancel).
CPU compares a rate with a gauge: a counter starting at zero has rate u*t/W until the window
W is full (Prometheus 2.x: closed range, no extrapolation below zero), so t0 is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.observability.metrics import LATENCY_BUCKETS
from tests.alerts.chart_rules import API_JOB, WORKER_JOB, AlertSpec
from tests.chart_tools import ALERTS, FULLNAME, NAMESPACE

STEP = 15  # seconds: evaluation interval and sample interval
SSE_ROUTE = "/api/v1/projects/{project_id}/events"
QUEUE = "memstack:ingest"

Labels = dict[str, str]


def series_name(metric: str, labels: Labels) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{body}}}"


def num(value: float) -> str:
    return repr(float(value)).removesuffix(".0")


def counter(per_step: float, steps: int, start: float = 0) -> str:
    return f"{num(start)}+{num(per_step)}x{steps}"


def gauge(value: float, steps: int) -> str:
    return f"{num(value)}x{steps}"


@dataclass
class Scenario:
    """Input series and the alert expected (or not) from them."""

    name: str
    series: list[tuple[str, str]]
    t0: float | None  # first evaluation where the expression is true; None: never
    expected: list[tuple[Labels, float]] = field(default_factory=list)  # output labels, value


def _api_pods() -> list[Labels]:
    return [
        {"instance": f"10.0.1.{n}:9090", "pod": f"{FULLNAME}-api-5d8f7c9b4-{s}", "container": "api"}
        for n, s in ((11, "x2k9p"), (12, "q7m4z"))
    ]


def _worker_pods() -> list[Labels]:
    return [
        {"instance": f"10.0.2.{n}:9090", "pod": f"{FULLNAME}-worker-6c9d8b7f5-{s}", "container": "worker"}
        for n, s in ((21, "h3n8v"), (22, "t5w2r"))
    ]


def _job(job: str) -> Labels:
    return {"job": job, "namespace": NAMESPACE, "endpoint": "metrics", "service": job}


def _errors(threshold: float) -> tuple[int, int]:
    """(bad, good) 5xx per 200 requests and step, on either side of the threshold."""
    base = math.floor(200 * threshold)
    return min(200, base + 20), max(0, base - 20)


def error_ratio(alert: AlertSpec, steps: int) -> list[Scenario]:
    bad, good = _errors(alert.threshold)
    # Per pod and step: 200 user requests answered 2xx or 503 (the 5xx share), plus 14 answered 404.
    assert bad / 214 > alert.threshold, f"{alert.name}: threshold {alert.threshold} cannot be crossed"

    def series(errors: int, probe_errors: bool) -> list[tuple[str, str]]:
        out = []
        for pod in _api_pods():
            for route, method, ok_status, share in (
                ("/api/v1/projects/{project_id}/episodes", "POST", "202", 0.75),
                ("/api/v1/projects", "GET", "200", 0.25),
            ):
                base = {**_job(API_JOB), **pod, "method": method, "route": route}
                ok, err = (200 - errors) * share, errors * share
                out.append(
                    (series_name("http_requests_total", {**base, "status": ok_status}), counter(ok, steps))
                )
                out.append(
                    (series_name("http_requests_total", {**base, "status": "503"}), counter(err, steps))
                )
                # 4xx are the clients' errors, not the service's.
                out.append((series_name("http_requests_total", {**base, "status": "404"}), counter(7, steps)))
            # Probes are not users: their 503s (a dependency is down) do not count, nor dilute.
            probe = {**_job(API_JOB), **pod, "method": "GET"}
            ready = "503" if probe_errors else "200"
            out.append(
                (
                    series_name("http_requests_total", {**probe, "route": "/ready", "status": ready}),
                    counter(300, steps),
                )
            )
            out.append(
                (
                    series_name("http_requests_total", {**probe, "route": "/health", "status": "200"}),
                    counter(300, steps),
                )
            )
        return out

    labels = {"job": API_JOB, "namespace": NAMESPACE}
    return [
        Scenario("breach", series(bad, probe_errors=False), STEP, [(labels, bad / 214)]),
        Scenario("healthy", series(good, probe_errors=True), None),
    ]


def latency(alert: AlertSpec, steps: int) -> list[Scenario]:
    bounds = list(LATENCY_BUCKETS)
    t = alert.threshold
    above = [i for i, b in enumerate(bounds) if b >= t and i + 1 < len(bounds)]
    assert above, f"{alert.name}: threshold {t}s is beyond the service's histogram buckets"
    lo, hi = bounds[above[0]], bounds[above[0] + 1]
    below = [b for b in bounds if b <= t]
    good_le = below[-1] if below else None

    def histogram(
        route: str, le_with_all: float | None, pod: Labels, per_step: float
    ) -> list[tuple[str, str]]:
        """Every observation lands in the bucket ending at le_with_all (None: above all bounds)."""
        out = []
        base = {**_job(API_JOB), **pod, "method": "GET", "route": route}
        for b in [*bounds, math.inf]:
            le = "+Inf" if b == math.inf else num(b)
            full = (le_with_all is None and b == math.inf) or (le_with_all is not None and b >= le_with_all)
            out.append(
                (
                    series_name("http_request_duration_seconds_bucket", {**base, "le": le}),
                    counter(per_step if full else 0, steps),
                )
            )
        return out

    bad = [s for pod in _api_pods() for s in histogram("/api/v1/projects", hi, pod, 30)]
    healthy: list[tuple[str, str]] = []
    for pod in _api_pods():
        if good_le is not None:
            healthy += histogram("/api/v1/projects", good_le, pod, 30)
        # Long-lived SSE streams must not count as latency.
        healthy += histogram(SSE_ROUTE, None, pod, 5)
    value = lo + (hi - lo) * 0.99
    labels = {"job": API_JOB, "namespace": NAMESPACE}
    return [Scenario("breach", bad, STEP, [(labels, value)]), Scenario("healthy", healthy, None)]


def availability(job: str, pods: list[Labels]) -> Callable[[AlertSpec, int], list[Scenario]]:
    def make(alert: AlertSpec, steps: int) -> list[Scenario]:
        t = alert.threshold
        targets = [
            *pods,
            *({**p, "instance": f"10.0.3.{i}:9090", "pod": f"{p['pod']}-b"} for i, p in enumerate(pods)),
        ]
        n = len(targets)
        up_count = max(0, math.ceil(n * t) - 1)
        assert up_count / n < t, f"{alert.name}: threshold {t} cannot be crossed"
        labels = {"job": job, "namespace": NAMESPACE}
        up = [series_name("up", {**_job(job), **p}) for p in targets]
        other = series_name(
            "up", {"job": "kube-state-metrics", "namespace": "monitoring", "instance": "10.0.9.9:8080"}
        )
        partial = [(s, gauge(1 if i < up_count else 0, steps)) for i, s in enumerate(up)]
        healthy = [(s, gauge(1, steps)) for s in up]
        # The targets vanish after `gone_after` seconds: Prometheus writes stale markers.
        gone_after = 4 * STEP
        vanished = [(s, f"1x{gone_after // STEP - 1} stale") for s in up]
        return [
            Scenario("breach", [*partial, (other, gauge(1, steps))], 0, [(labels, up_count / n)]),
            Scenario("healthy", [*healthy, (other, gauge(1, steps))], None),
            Scenario("absent", [(other, gauge(1, steps))], 0, [(labels, 0)]),
            Scenario("vanished", [*vanished, (other, gauge(1, steps))], gone_after, [(labels, 0)]),
        ]

    return make


def queue(alert: AlertSpec, steps: int) -> list[Scenario]:
    max_size, t = 1000, alert.threshold
    bad, good = min(max_size, math.floor(max_size * t) + 50), math.floor(max_size * t * 0.5)
    assert bad / max_size > t, f"{alert.name}: threshold {t} cannot be crossed"

    def series(size: int, limit: int) -> list[tuple[str, str]]:
        out = []
        for pod in _worker_pods():
            labels = {**_job(WORKER_JOB), **pod, "queue": QUEUE}
            out.append((series_name("memstack_queue_size", labels), gauge(size, steps)))
            out.append((series_name("memstack_queue_max_size", labels), gauge(limit, steps)))
        return out

    labels = {"namespace": NAMESPACE, "queue": QUEUE}
    return [
        Scenario("breach", series(bad, max_size), 0, [(labels, bad / max_size)]),
        Scenario("healthy", series(good, max_size), None),
        # A zero limit (metric not yet initialised) must not divide into +Inf and page.
        Scenario("no-limit", series(good, 0), None),
    ]


def _cadvisor(pod: Labels) -> Labels:
    return {
        "job": "kubelet",
        "metrics_path": "/metrics/cadvisor",
        "service": "kube-prometheus-stack-kubelet",
        "namespace": NAMESPACE,
        "node": "node-a",
        "instance": "10.0.0.5:10250",
        "pod": pod["pod"],
        "container": pod["container"],
        "id": f"/kubepods/burstable/pod-{pod['pod'][-5:]}/cri-containerd-0123",
        "image": "registry.example.com/memstack:0.1.0",
        "name": "0123456789ab",
    }


def _ksm_limit(pod: Labels, resource: str, unit: str) -> str:
    labels = {
        "job": "kube-state-metrics",
        "namespace": NAMESPACE,
        "instance": "10.0.9.9:8080",
        "node": "node-a",
        "pod": pod["pod"],
        "container": pod["container"],
        "uid": "7f1c",
        "resource": resource,
        "unit": unit,
    }
    return series_name("kube_pod_container_resource_limits", labels)


def _other_release(pod: Labels) -> Labels:
    return {**pod, "pod": pod["pod"].replace(FULLNAME, "other-memstack")}


def memory(alert: AlertSpec, steps: int) -> list[Scenario]:
    limit, t = 2 * 1024**3, alert.threshold
    bad_share, good_share = min(1.0, t + (1 - t) / 2), t / 2
    assert bad_share > t, f"{alert.name}: threshold {t} cannot be crossed"
    target = _api_pods()[0]

    def series(share: float) -> list[tuple[str, str]]:
        out = []
        for pod in [*_api_pods(), *_worker_pods()]:
            used = limit * (share if pod == target else t / 4)
            out.append(
                (series_name("container_memory_working_set_bytes", _cadvisor(pod)), gauge(used, steps))
            )
            out.append((_ksm_limit(pod, "memory", "byte"), gauge(limit, steps)))
            # The pod-level cgroup (container="") sums every container: excluded.
            out.append(
                (
                    series_name("container_memory_working_set_bytes", {**_cadvisor(pod), "container": ""}),
                    gauge(limit * 1.5, steps),
                )
            )
            # Another release's pods in the namespace are not ours.
            other = _other_release(pod)
            out.append(
                (series_name("container_memory_working_set_bytes", _cadvisor(other)), gauge(limit, steps))
            )
            out.append((_ksm_limit(other, "memory", "byte"), gauge(limit, steps)))
        return out

    labels = {"namespace": NAMESPACE, "pod": target["pod"], "container": target["container"]}
    return [
        Scenario("breach", series(bad_share), 0, [(labels, bad_share)]),
        Scenario("healthy", series(good_share), None),
    ]


def cpu(alert: AlertSpec, steps: int) -> list[Scenario]:
    limit, t, window = 2.0, alert.threshold, alert.window
    share = min(1.0, t + (1 - t) / 2)
    # The rate ramps up as u*t/W until the window is full: keep the crossing mid-step.
    while True:
        crossing = window * t / share
        if abs(crossing / STEP - round(crossing / STEP)) > 0.2 or crossing < STEP:
            break
        share *= 0.97
    assert share > t, f"{alert.name}: threshold {t} cannot be crossed"
    t0 = max(STEP, math.floor(crossing / STEP + 1) * STEP)
    target = _worker_pods()[0]

    def series(bad: float) -> list[tuple[str, str]]:
        out = []
        for pod in [*_api_pods(), *_worker_pods()]:
            used = limit * (bad if pod == target else t / 4)
            out.append(
                (
                    series_name("container_cpu_usage_seconds_total", {**_cadvisor(pod), "cpu": "total"}),
                    counter(used * STEP, steps),
                )
            )
            out.append((_ksm_limit(pod, "cpu", "core"), gauge(limit, steps)))
            out.append(
                (
                    series_name(
                        "container_cpu_usage_seconds_total",
                        {**_cadvisor(pod), "container": "", "cpu": "total"},
                    ),
                    counter(limit * 3 * STEP, steps),
                )
            )
            other = _other_release(pod)
            out.append(
                (
                    series_name("container_cpu_usage_seconds_total", {**_cadvisor(other), "cpu": "total"}),
                    counter(limit * STEP, steps),
                )
            )
            out.append((_ksm_limit(other, "cpu", "core"), gauge(limit, steps)))
        return out

    labels = {"namespace": NAMESPACE, "pod": target["pod"], "container": target["container"]}

    def value_at(seconds: float) -> float:
        return share * min(seconds, window) / window

    scenario = Scenario("breach", series(share), t0, [(labels, value_at(t0 + alert.hold))])
    return [scenario, Scenario("healthy", series(t / 2), None)]


def dependency(alert: AlertSpec, steps: int) -> list[Scenario]:
    t = alert.threshold
    down, up = t, t + 1

    def series(first: dict[str, float], second: dict[str, float]) -> list[tuple[str, str]]:
        out = []
        pods = [(_api_pods()[0], first), (_api_pods()[1], second)]
        for pod, states in pods:
            for dep, value in states.items():
                labels = {**_job(API_JOB), **pod, "dependency": dep}
                out.append((series_name("memstack_dependency_up", labels), gauge(value, steps)))
        return out

    all_up = {"postgres": up, "redis": up, "neo4j": up}
    neo4j_down = {**all_up, "neo4j": down}
    labels = {"namespace": NAMESPACE, "dependency": "neo4j"}
    return [
        Scenario("breach", series(neo4j_down, neo4j_down), 0, [(labels, down)]),
        Scenario("healthy", series(all_up, all_up), None),
        # One pod alone losing a dependency is that pod's readiness problem, not an outage.
        Scenario("one-pod", series(neo4j_down, all_up), None),
    ]


def job_failures(alert: AlertSpec, steps: int) -> list[Scenario]:
    bad, good = _errors(alert.threshold)
    assert bad / 200 > alert.threshold, f"{alert.name}: threshold {alert.threshold} cannot be crossed"

    def series(failed: int) -> list[tuple[str, str]]:
        out = []
        for pod in _worker_pods():
            base = {**_job(WORKER_JOB), **pod, "task": "ingest_episodes"}
            out.append(
                (
                    series_name("memstack_jobs_total", {**base, "status": "succeeded"}),
                    counter((200 - failed) / 2, steps),
                )
            )
            out.append(
                (series_name("memstack_jobs_total", {**base, "status": "failed"}), counter(failed / 2, steps))
            )
            # Retries are not failures (yet).
            out.append(
                (series_name("memstack_jobs_total", {**base, "status": "retried"}), counter(50, steps))
            )
        return out

    labels = {"namespace": NAMESPACE, "task": "ingest_episodes"}
    return [
        Scenario("breach", series(bad), STEP, [(labels, bad / 200)]),
        Scenario("healthy", series(good), None),
    ]


GENERATORS: dict[str, Callable[[AlertSpec, int], list[Scenario]]] = {
    "MemStackApiHighErrorRate": error_ratio,
    "MemStackApiHighLatencyP99": latency,
    "MemStackApiDown": availability(API_JOB, _api_pods()),
    "MemStackWorkerDown": availability(WORKER_JOB, _worker_pods()),
    "MemStackQueueNearFull": queue,
    "MemStackHighMemoryUsage": memory,
    "MemStackHighCpuUsage": cpu,
    "MemStackDependencyDown": dependency,
    "MemStackJobFailureRatioHigh": job_failures,
}
assert set(GENERATORS) == set(ALERTS.values())


def _duration(seconds: float) -> str:
    assert seconds == int(seconds), seconds
    return f"{int(seconds)}s"


def build_groups(alert: AlertSpec) -> list[dict[str, Any]]:
    """promtool test groups for one alert."""
    assert alert.hold % STEP == 0, f"{alert.name}: for={alert.hold}s is not a multiple of {STEP}s"
    # Long enough for every check below, with room for the slowest ramp (CPU).
    horizon = alert.hold + 3 * STEP + (alert.window if "[" in alert.expr else 0) + 4 * STEP
    steps = int(horizon // STEP) + 1
    groups = []
    for scenario in GENERATORS[alert.name](alert, steps):
        checks: list[dict[str, Any]] = []
        if scenario.t0 is None:
            for at in (alert.hold + STEP, horizon):
                checks.append({"eval_time": _duration(at), "alertname": alert.name, "exp_alerts": []})
        else:
            fire_at = scenario.t0 + alert.hold
            if scenario.t0 > 0:
                # Not true before t0 (checks the timing model itself).
                checks.append(
                    {"eval_time": _duration(scenario.t0 - STEP), "alertname": alert.name, "exp_alerts": []}
                )
            if alert.hold > 0:
                # Pending, not firing, one evaluation before `for` has elapsed.
                checks.append(
                    {"eval_time": _duration(fire_at - STEP), "alertname": alert.name, "exp_alerts": []}
                )
            expected = []
            for labels, value in scenario.expected:
                expected.append(
                    {
                        "exp_labels": {**labels, **alert.labels},
                        "exp_annotations": alert.expected_annotations(labels, value),
                    }
                )
            checks.append({"eval_time": _duration(fire_at), "alertname": alert.name, "exp_alerts": expected})
        groups.append(
            {
                "name": f"{alert.name} {scenario.name}",
                "interval": f"{STEP}s",
                "input_series": [{"series": s, "values": v} for s, v in scenario.series],
                "alert_rule_test": checks,
            }
        )
    return groups


def build_file(rules_file: str, alerts: list[AlertSpec]) -> dict[str, Any]:
    """A whole promtool test file for the given alerts of one rule file."""
    return {
        "rule_files": [rules_file],
        "evaluation_interval": f"{STEP}s",
        "tests": [group for alert in alerts for group in build_groups(alert)],
    }
