"""/health and /ready against the real servers, including a dependency going away and back."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.processes import RunningApi
from tests.support.stack import server_ctl, wait_for


def test_health_is_ok(api: RunningApi) -> None:
    response = httpx.get(f"{api.base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_every_dependency_answers(api: RunningApi) -> None:
    response = wait_for(f"{api.base_url}/ready", timeout=30)
    body = response.json()
    assert body["status"] == "ready"
    assert {check["name"]: check["ok"] for check in body["checks"]} == {
        "postgres": True,
        "redis": True,
        "neo4j": True,
    }


@pytest.mark.parametrize("dependency", ["redis", "postgres", "neo4j"])
def test_ready_reports_a_stopped_dependency_and_recovers(api: RunningApi, dependency: str) -> None:
    wait_for(f"{api.base_url}/ready", timeout=30)
    server_ctl(dependency, "stop")
    try:
        response = wait_for(f"{api.base_url}/ready", status=503, timeout=30)
        assert response.headers["content-type"].startswith("application/json")
        checks = {check["name"]: check for check in response.json()["checks"]}
        assert checks[dependency]["ok"] is False
        assert checks[dependency]["detail"]
        assert all(check["ok"] for name, check in checks.items() if name != dependency)
        metrics = httpx.get(api.metrics_url).text
        assert f'memstack_dependency_up{{dependency="{dependency}"}} 0.0' in metrics
    finally:
        server_ctl(dependency, "start")
    # The same API process recovers without a restart.
    wait_for(f"{api.base_url}/ready", timeout=90)
    assert api.process.poll() is None
    metrics = httpx.get(api.metrics_url).text
    assert f'memstack_dependency_up{{dependency="{dependency}"}} 1.0' in metrics


def test_dependency_gauge_follows_a_dependency_without_probe_traffic(api: RunningApi) -> None:
    """The API re-checks on its own, so the dependency-down alert does not rely on /ready calls."""
    wait_for(f"{api.base_url}/ready", timeout=30)
    gauge = 'memstack_dependency_up{dependency="redis"}'
    server_ctl("redis", "stop")
    try:
        deadline = time.monotonic() + 30
        while f"{gauge} 0.0" not in httpx.get(api.metrics_url).text:
            assert time.monotonic() < deadline, "the gauge never dropped"
            time.sleep(0.5)
    finally:
        server_ctl("redis", "start")
    deadline = time.monotonic() + 30
    while f"{gauge} 1.0" not in httpx.get(api.metrics_url).text:
        assert time.monotonic() < deadline, "the gauge never recovered"
        time.sleep(0.5)
