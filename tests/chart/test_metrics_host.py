"""The metrics server binds loopback by default (local runs); in the chart's pods, all interfaces."""

from __future__ import annotations

from service.settings import Settings
from tests.chart.conftest import render
from tests.chart_tools import FULLNAME


def test_pods_serve_metrics_on_all_interfaces(helm: str, env: str) -> None:
    assert Settings().metrics_host == "127.0.0.1"
    rendered = render(helm, env)
    for name in (FULLNAME, f"{FULLNAME}-migrations"):
        assert rendered.get("ConfigMap", name)["data"]["METRICS_HOST"] == "0.0.0.0", name  # noqa: S104
