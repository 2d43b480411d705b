"""`promtool check rules` and `promtool test rules` on the rules rendered for every values file.

The test files are generated from the rendered rules (tests/alerts/promtool_cases.py), so each
environment's thresholds, `for` durations, windows, labels and runbook links are what is tested.
With MEMSTACK_ALERTS_KEEP=<dir> the rule and test files are kept there for inspection.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.chart_rules import RUNBOOKS, AlertSpec, alert_rules, render_rule_spec, seconds, threshold
from tests.alerts.promtool_cases import build_file
from tests.chart_tools import ALERTS, ENVIRONMENTS, tool, values_args

# Non-default numbers everywhere, so a rule that ignored its values would fail its test.
CUSTOM = [
    "--set", "prometheusRule.additionalAlertLabels.cluster=eu-1",
    "--set", "prometheusRule.alerts.apiHighErrorRate.threshold=0.25",
    "--set", "prometheusRule.alerts.apiHighErrorRate.window=2m",
    "--set", "prometheusRule.alerts.apiHighErrorRate.for=45s",
    "--set", "prometheusRule.alerts.apiHighLatencyP99.threshold=0.3",
    "--set", "prometheusRule.alerts.apiHighLatencyP99.for=0s",
    "--set", "prometheusRule.alerts.apiDown.threshold=0.8",
    "--set", "prometheusRule.alerts.apiDown.labels.team=api",
    "--set", "prometheusRule.alerts.workerDown.threshold=1",
    "--set", "prometheusRule.alerts.queueNearFull.threshold=0.5",
    "--set", "prometheusRule.alerts.queueNearFull.for=1m",
    "--set", "prometheusRule.alerts.queueNearFull.severity=critical",
    "--set", "prometheusRule.alerts.queueNearFull.runbookUrl=https://wiki.example.com/queue",
    "--set", "prometheusRule.alerts.highMemoryUsage.threshold=0.75",
    "--set", "prometheusRule.alerts.highCpuUsage.threshold=0.6",
    "--set", "prometheusRule.alerts.highCpuUsage.window=2m",
    "--set", "prometheusRule.alerts.highCpuUsage.for=30s",
    "--set", "prometheusRule.alerts.dependencyDown.for=15s",
    "--set", "prometheusRule.alerts.jobFailureRatioHigh.threshold=0.5",
    "--set", "prometheusRule.alerts.jobFailureRatioHigh.window=1m",
]  # fmt: skip
CASES = {env: values_args(env) for env in ENVIRONMENTS} | {"custom": CUSTOM}


def _workdir(tmp_path: Path, case: str) -> Path:
    keep = os.environ.get("MEMSTACK_ALERTS_KEEP")
    if not keep:
        return tmp_path
    path = Path(keep) / case
    path.mkdir(parents=True, exist_ok=True)
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module", params=list(CASES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    case = str(request.param)
    return case, render_rule_spec(CASES[case])


def test_promtool_check_rules(rendered: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    case, spec = rendered
    path = _workdir(tmp_path, case) / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    proc = _promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def test_promtool_unit_tests_for_every_alert(rendered: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    case, spec = rendered
    work = _workdir(tmp_path, case)
    rules = alert_rules(spec)
    assert set(rules) == set(ALERTS.values())
    (work / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    alerts = [AlertSpec.of(rules[name]) for name in ALERTS.values()]
    tests = build_file("rules.yaml", alerts)
    test_path = work / "tests.yaml"
    test_path.write_text(yaml.safe_dump(tests, sort_keys=False, width=1000), encoding="utf-8")
    groups = {g["name"].split(" ")[0] for g in tests["tests"]}
    assert groups == set(ALERTS.values())
    proc = _promtool("test", "rules", str(test_path))
    assert proc.returncode == 0, f"{test_path}:\n{proc.stdout[-6000:]}{proc.stderr[-6000:]}"
    assert "SUCCESS" in proc.stdout


def test_runbook_links_point_at_the_runbooks(rendered: tuple[str, dict[str, Any]]) -> None:
    case, spec = rendered
    for name, rule in alert_rules(spec).items():
        url = rule["annotations"]["runbook_url"]
        if case == "custom" and name == "MemStackQueueNearFull":
            assert url == "https://wiki.example.com/queue"
            continue
        assert url == f"https://github.com/memstack/memstack/blob/main/docs/runbooks/{name}.md"
        assert (RUNBOOKS / f"{name}.md").is_file(), f"no runbook for {name}"


@pytest.mark.parametrize("name", sorted(ALERTS.values()))
def test_runbook_has_the_sections_an_operator_needs(name: str) -> None:
    text = (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n")
    for heading in ("## Meaning", "## Confirm", "## Mitigate", "## Verify recovery"):
        assert heading in text, f"{name}.md lacks {heading!r}"
    assert re.search(r"helm (-n \S+ )?rollback", text), f"{name}.md never says how to roll back"
    assert "kubectl" in text


def _drop_absent(expr: str) -> str:
    return expr.split("\nor\n")[0]


def _drop_route_exclusion(expr: str) -> str:
    return re.sub(r',route!="[^"]*"', "", expr)


def _drop_le(expr: str) -> str:
    return expr.replace("sum by (namespace, job, le)", "sum by (namespace, job)")


def _count_4xx(expr: str) -> str:
    return expr.replace('status=~"5.."', 'status=~"[45].."')


def _absolute_rate(expr: str) -> str:
    """The upstream mistake: a per-series rate of 5xx compared with the threshold."""
    numerator = expr.split("\n/\n")[0]
    return f"{numerator} > {threshold(expr)}"


def _no_limit_guard(expr: str) -> str:
    return expr.replace(") > 0)", "))")


def _shorter_for(rule: dict[str, Any]) -> None:
    rule["for"] = f"{int(seconds(rule['for']) - 60)}s"


MUTANTS: dict[str, tuple[str, Any]] = {
    "availability without absent()": ("MemStackApiDown", _drop_absent),
    "worker availability without absent()": ("MemStackWorkerDown", _drop_absent),
    "p99 including the SSE route": ("MemStackApiHighLatencyP99", _drop_route_exclusion),
    "p99 without le": ("MemStackApiHighLatencyP99", _drop_le),
    "4xx counted as errors": ("MemStackApiHighErrorRate", _count_4xx),
    "probe 503s counted as errors": ("MemStackApiHighErrorRate", _drop_route_exclusion),
    "absolute error rate": ("MemStackApiHighErrorRate", _absolute_rate),
    "queue limit of 0 not guarded": ("MemStackQueueNearFull", _no_limit_guard),
    "for one minute shorter": ("MemStackDependencyDown", _shorter_for),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_the_unit_tests_catch_broken_rules(mutant: str, tmp_path: Path) -> None:
    """The generated tests are only worth something if they fail on the known mistakes."""
    spec = render_rule_spec(CASES["default"])
    rules = alert_rules(spec)
    alerts = [AlertSpec.of(rules[name]) for name in ALERTS.values()]
    target, change = MUTANTS[mutant]
    rule = rules[target]
    if change is _shorter_for:
        change(rule)
    else:
        rule["expr"] = change(rule["expr"])
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    tests = build_file("rules.yaml", [a for a in alerts if a.name == target])
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False, width=1000), encoding="utf-8")
    proc = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert proc.returncode != 0, f"the tests of {target} did not notice: {mutant}"
    assert "FAILED" in proc.stdout + proc.stderr
