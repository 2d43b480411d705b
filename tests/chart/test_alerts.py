"""The PrometheusRule template: stable alert names, release-scoped selectors, per-alert values,
and `promtool check rules` on the extracted `.spec` for every values file."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import render
from tests.chart_tools import ALERTS, ENVIRONMENTS, FULLNAME, NAMESPACE, tool

API_JOB = f'job="{FULLNAME}-api",namespace="{NAMESPACE}"'
WORKER_JOB = f'job="{FULLNAME}-worker",namespace="{NAMESPACE}"'
SSE_ROUTE = "/api/v1/projects/{project_id}/events"


def _rules(helm: str = "helm4", env: str = "default", sets: dict[str, str] | None = None) -> dict[str, Any]:
    rule = render(helm, env, sets=sets).get("PrometheusRule", FULLNAME)
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_promtool_check_rules(helm: str, env: str, tmp_path: Path) -> None:
    spec = render(helm, env).get("PrometheusRule", FULLNAME)["spec"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    proc = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def test_every_alert_is_there_with_its_annotations(helm: str, env: str) -> None:
    rules = _rules(helm, env)
    assert set(rules) == set(ALERTS.values())
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["for"]
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert "$value" in annotations["description"]
        assert annotations["runbook_url"].endswith(f"/docs/runbooks/{name}.md")


def test_selectors_come_from_the_release() -> None:
    rules = _rules()
    assert rules["MemStackApiHighErrorRate"]["expr"].count(API_JOB) == 2
    assert 'status=~"5.."' in rules["MemStackApiHighErrorRate"]["expr"]
    assert f"absent(up{{{API_JOB}}})" in rules["MemStackApiDown"]["expr"]
    assert f"absent(up{{{WORKER_JOB}}})" in rules["MemStackWorkerDown"]["expr"]
    assert WORKER_JOB in rules["MemStackQueueNearFull"]["expr"]
    other = render(sets={"fullnameOverride": "other"}).get("PrometheusRule", "other")
    text = yaml.safe_dump(other["spec"])
    assert 'job="other-api"' in text
    assert 'job="other-worker"' in text
    assert FULLNAME not in text


def test_expressions_avoid_the_upstream_mistakes() -> None:
    rules = _rules()
    latency = rules["MemStackApiHighLatencyP99"]["expr"]
    assert "sum by (namespace, job, le)" in latency
    assert f'route!="{SSE_ROUTE}"' in latency
    # Probes are not users: neither their latency nor their 503s during an outage count.
    errors = rules["MemStackApiHighErrorRate"]["expr"]
    for probe in ("/health", "/ready"):
        assert f'route!="{probe}"' in latency
        assert errors.count(f'route!="{probe}"') == 2
    assert "/\n" in rules["MemStackApiHighErrorRate"]["expr"]  # a ratio, not an absolute rate
    memory = rules["MemStackHighMemoryUsage"]["expr"]
    assert "container_memory_working_set_bytes" in memory
    assert 'container!=""' in memory
    assert 'resource="memory"' in memory
    assert "> 0)" in memory
    cpu = rules["MemStackHighCpuUsage"]["expr"]
    assert "rate(container_cpu_usage_seconds_total" in cpu
    assert 'resource="cpu",unit="core"' in cpu
    assert "memstack_queue_size" in rules["MemStackQueueNearFull"]["expr"]
    assert "memstack_queue_max_size" in rules["MemStackQueueNearFull"]["expr"]
    assert "memstack_dependency_up" in rules["MemStackDependencyDown"]["expr"]
    assert 'status="failed"' in rules["MemStackJobFailureRatioHigh"]["expr"]


def test_per_alert_values_flow_through() -> None:
    sets = {
        "prometheusRule.alerts.queueNearFull.threshold": "0.5",
        "prometheusRule.alerts.queueNearFull.for": "1m",
        "prometheusRule.alerts.queueNearFull.severity": "critical",
        "prometheusRule.alerts.queueNearFull.runbookUrl": "https://runbooks.example.com/queue",
        "prometheusRule.alerts.queueNearFull.labels.team": "memory",
        "prometheusRule.alerts.apiHighErrorRate.window": "1m",
        "prometheusRule.alerts.highCpuUsage.enabled": "false",
        "prometheusRule.additionalAlertLabels.cluster": "eu-1",
        "prometheusRule.runbookBaseUrl": "https://wiki.example.com/rb/",
    }
    rules = _rules(sets=sets)
    queue = rules["MemStackQueueNearFull"]
    assert queue["expr"].endswith("> 0.5")
    assert queue["for"] == "1m"
    assert queue["labels"] == {"severity": "critical", "team": "memory", "cluster": "eu-1"}
    assert queue["annotations"]["runbook_url"] == "https://runbooks.example.com/queue"
    assert "(threshold 0.5)" in queue["annotations"]["description"]
    assert "[1m]" in rules["MemStackApiHighErrorRate"]["expr"]
    assert (
        rules["MemStackApiDown"]["annotations"]["runbook_url"]
        == "https://wiki.example.com/rb/MemStackApiDown.md"
    )
    assert "MemStackHighCpuUsage" not in rules


def test_additional_rules_are_appended(tmp_path: Path) -> None:
    values = tmp_path / "extra.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "prometheusRule": {
                    "additionalRules": [
                        {
                            "name": "ops",
                            "rules": [{"alert": "OpsCustom", "expr": "vector(1) > 0", "for": "1m"}],
                        }
                    ]
                }
            }
        ),
        encoding="utf-8",
    )
    from tests.chart.conftest import _render

    rule = _render("helm4", ("-f", str(values))).get("PrometheusRule", FULLNAME)
    groups = {g["name"]: g for g in rule["spec"]["groups"]}
    assert groups["ops"]["rules"][0]["alert"] == "OpsCustom"
    assert len(groups) == 2


def test_prometheus_rule_namespace_and_labels() -> None:
    rule = render(
        sets={"prometheusRule.namespace": "monitoring", "prometheusRule.labels.release": "kps"}
    ).get("PrometheusRule", FULLNAME)
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kps"
    # The selectors still point at the release's namespace.
    assert f'namespace="{NAMESPACE}"' in rule["spec"]["groups"][0]["rules"][0]["expr"]
    assert not render(sets={"prometheusRule.enabled": "false"}).has("PrometheusRule")


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    # Grafana variables replaced by sample values, each panel query checked by promtool as a
    # recording rule (promtool parses and validates the PromQL).
    import json

    from tests.chart_tools import CHART

    dashboard = json.loads((CHART / "files" / "dashboards" / "memstack.json").read_text(encoding="utf-8"))
    substitutions = {
        "$__rate_interval": "5m",
        "$namespace": NAMESPACE,
        "$api_job": f"{FULLNAME}-api",
        "$worker_job": f"{FULLNAME}-worker",
    }
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in substitutions.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, expr
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId'].lower()}", "expr": expr})
    assert len(rules) >= 15
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    proc = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
