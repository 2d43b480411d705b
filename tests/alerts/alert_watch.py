"""Waiting for the chart's alerts in a real Prometheus, and when each one fired or resolved.

Shared by the live alert test (a Prometheus scraping local processes) and the real node's
monitoring test (the Prometheus Operator's Prometheus scraping pods): both check that an alert
fires with exactly the labels the rule gives it and the annotations the chart renders, and
record the seconds from the fault (or the recovery) to each change.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.alerts.chart_rules import AlertSpec
from tests.alerts.live_stack import PrometheusApi, wait_until
from tests.chart_tools import CHART, REPO

DASHBOARD = CHART / "files" / "dashboards" / "memstack.json"

Expectation = tuple[str, dict[str, str]]  # alert name, labels it must carry
Timings = list[tuple[str, str, float]]  # (phase, event, seconds)


def matching(alerts: list[dict[str, Any]], name: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"]["alertname"] == name and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def dashboard_queries(
    *, namespace: str, api_job: str, worker_job: str, rate_interval: str
) -> list[tuple[str, str]]:
    """(panel title, query) of every panel target of the chart's dashboard, with its template
    variables set as Grafana would set them for one release."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    substitutions = {
        "$__rate_interval": rate_interval,
        "$namespace": namespace,
        "$api_job": api_job,
        "$worker_job": worker_job,
    }
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in substitutions.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"an unknown dashboard variable in {expr}"
            queries.append((str(panel["title"]), expr))
    return queries


@dataclass
class AlertWatch:
    prometheus: PrometheusApi
    rules: dict[str, AlertSpec]
    timings: Timings
    # Labels every alert of the release under test carries (a shared Prometheus has others).
    scope: dict[str, str] = field(default_factory=dict)
    fire_timeout: float = 90.0
    resolve_timeout: float = 120.0

    def ours(self) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts of the release under test."""
        return [
            a for a in self.prometheus.alerts() if all(a["labels"].get(k) == v for k, v in self.scope.items())
        ]

    def record(self, phase: str, event: str, seconds: float) -> None:
        self.timings.append((phase, event, seconds))

    def wait_firing(
        self, phase: str, since: float, *expected: Expectation, timeout: float | None = None
    ) -> dict[str, dict[str, Any]]:
        """Poll until every expected alert fires, recording when each one started to; then
        check each one's labels (exactly) and annotations."""
        fired: dict[str, dict[str, Any]] = {}

        def all_firing() -> bool:
            alerts = [a for a in self.ours() if a["state"] == "firing"]
            for name, labels in expected:
                key = f"{name}{labels}"
                if key not in fired and (found := matching(alerts, name, labels)):
                    fired[key] = found[0]
                    self.record(phase, f"{name} {labels} firing", time.monotonic() - since)
            return len(fired) == len(expected)

        try:
            wait_until(
                f"{[e[0] for e in expected]} to fire", all_firing, timeout or self.fire_timeout, interval=0.5
            )
        except AssertionError:
            raise AssertionError(
                f"not all of {expected} fired; active alerts: {json.dumps(self.ours())[:3000]}"
            ) from None
        for name, labels in expected:
            alert = fired[f"{name}{labels}"]
            rule = self.rules[name]
            assert alert["labels"] == {"alertname": name, **labels, **rule.labels}
            assert alert["annotations"]["runbook_url"] == rule.annotations["runbook_url"]
            assert rule.annotations["runbook_url"].endswith(f"/docs/runbooks/{name}.md")
            assert (REPO / "docs" / "runbooks" / f"{name}.md").is_file()
            assert alert["annotations"]["summary"] == rule.annotations["summary"]
            assert "{{" not in alert["annotations"]["description"]
        return fired

    def wait_resolved(self, phase: str, since: float, *names: str, timeout: float | None = None) -> None:
        pending = set(names)

        def resolved() -> bool:
            active = {a["labels"]["alertname"] for a in self.ours()}
            for name in sorted(pending - active):
                pending.discard(name)
                self.record(phase, f"{name} resolved", time.monotonic() - since)
            return not pending

        try:
            wait_until(
                f"{sorted(pending)} to resolve", resolved, timeout or self.resolve_timeout, interval=0.5
            )
        except AssertionError:
            raise AssertionError(
                f"{sorted(pending)} still active: {json.dumps(self.ours())[:3000]}"
            ) from None
