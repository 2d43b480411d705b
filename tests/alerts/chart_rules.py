"""The alert rules as the chart renders them, and what Prometheus makes of their templates.

Rendering goes through the real `helm template`; the PrometheusRule's `.spec` is what a
Prometheus rule file holds (promtool and Prometheus cannot read the PrometheusRule object).
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import yaml

from tests.chart_tools import (
    CHART,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    REPO,
    tool,
)

RUNBOOKS = REPO / "docs" / "runbooks"
API_JOB = f"{FULLNAME}-api"
WORKER_JOB = f"{FULLNAME}-worker"

Rule = dict[str, Any]


def render_rule_spec(
    args: list[str] | tuple[str, ...] = (),
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    helm: str = "helm4",
) -> dict[str, Any]:
    """`.spec` of the chart's PrometheusRule rendered with the given helm arguments."""
    cmd = [tool(helm), "template", release, str(CHART), "--namespace", namespace, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed: {proc.stderr.strip()}")
    for doc in yaml.safe_load_all(proc.stdout):
        if doc and doc.get("kind") == "PrometheusRule":
            spec: dict[str, Any] = doc["spec"]
            return spec
    raise RuntimeError("the chart rendered no PrometheusRule")


def alert_rules(spec: dict[str, Any]) -> dict[str, Rule]:
    return {r["alert"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}


# --- durations -------------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def seconds(duration: str) -> float:
    """A Prometheus duration (`1h30m`, `90s`) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def threshold(expr: str) -> float:
    """The threshold of an alert expression: the last comparison with a literal that ends the
    expression or an `or` branch (`> 0)` guards inside the expression are not thresholds)."""
    found = re.findall(r"(?:<=|>=|<|>)\s*(-?[0-9][0-9.eE+-]*)\s*(?=\nor\n|$)", expr.strip())
    if not found:
        raise ValueError(f"no threshold in {expr!r}")
    return float(found[-1])


def rate_window(expr: str) -> float:
    windows = {seconds(w) for w in re.findall(r"\[([0-9a-z]+)\]", expr)}
    if len(windows) != 1:
        raise ValueError(f"expected one rate window in {expr!r}, got {windows}")
    return windows.pop()


# --- Prometheus' template functions ----------------------------------------------------------


def go_float(value: float) -> str:
    """`{{ $value }}`: Go prints a float64 in its shortest form."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def humanize_percentage(value: float) -> str:
    return "%.4g%%" % (value * 100)


def humanize_duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return "%.4g" % value  # noqa: UP031
    if value == 0:
        return "%.4gs" % value  # noqa: UP031
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        secs, minutes, hours, days = whole % 60, (whole // 60) % 60, (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {secs}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {secs}s"
        if minutes:
            return f"{sign}{minutes}m {secs}s"
        return "%s%.4gs" % (sign, value)  # noqa: UP031
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return "%.4g%ss" % (value, prefix)  # noqa: UP031


_FUNCTIONS = {
    "": go_float,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}
_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def expand(template: str, labels: dict[str, str], value: float) -> str:
    """Expand an annotation the way Prometheus does, for the few forms the chart uses; anything
    else is an error, so a new construct in the template cannot go untested."""

    def action(match: re.Match[str]) -> str:
        body = match.group(1)
        if m := re.fullmatch(r"\$labels\.(\w+)", body):
            return labels.get(m.group(1), "")
        if m := re.fullmatch(r"\$value(?:\s*\|\s*(\w+))?", body):
            return _FUNCTIONS[m.group(1) or ""](value)
        raise ValueError(f"template action not supported by the test: {{{{ {body} }}}}")

    return _ACTION.sub(action, template)


@dataclass(frozen=True)
class AlertSpec:
    """One rendered alert, with what the tests need to know about it."""

    name: str
    expr: str
    hold: float  # `for`, in seconds
    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def of(cls, rule: Rule) -> AlertSpec:
        return cls(
            name=rule["alert"],
            expr=rule["expr"],
            hold=seconds(rule.get("for", "0s")),
            labels={k: str(v) for k, v in (rule.get("labels") or {}).items()},
            annotations={k: str(v) for k, v in (rule.get("annotations") or {}).items()},
        )

    @property
    def threshold(self) -> float:
        return threshold(self.expr)

    @property
    def window(self) -> float:
        return rate_window(self.expr)

    def expected_annotations(self, labels: dict[str, str], value: float) -> dict[str, str]:
        return {k: expand(v, labels, value) for k, v in self.annotations.items()}
