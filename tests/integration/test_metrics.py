"""The API's /metrics: route templates as labels and the real status codes."""

from __future__ import annotations

import httpx

from tests.support.metrics import find_sample, sample
from tests.support.processes import RunningApi


def test_requests_are_counted_by_route_template_and_status(api: RunningApi) -> None:
    before = httpx.get(api.metrics_url).text
    assert httpx.get(f"{api.base_url}/health").status_code == 200
    assert httpx.get(f"{api.base_url}/no/such/path").status_code == 404
    assert httpx.get(f"{api.base_url}/no/such/path").status_code == 404
    after = httpx.get(api.metrics_url).text

    def delta(**labels: str) -> float:
        return sample(after, "http_requests_total", **labels) - (
            find_sample(before, "http_requests_total", **labels) or 0.0
        )

    assert delta(method="GET", route="/health", status="200") == 1
    assert delta(method="GET", route="unmatched", status="404") == 2
    assert "/no/such/path" not in after  # raw paths never become labels
    assert sample(after, "http_request_duration_seconds_count", method="GET", route="/health") >= 1


def test_a_404_is_problem_json_with_request_id(api: RunningApi) -> None:
    response = httpx.get(f"{api.base_url}/nope", headers={"X-Request-ID": "trace-me-123"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "trace-me-123"
    assert response.json() == {
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/nope",
    }
    assert "trace-me-123" in api.wait_for_log("trace-me-123")


def test_metrics_expose_every_api_family(api: RunningApi) -> None:
    text = httpx.get(api.metrics_url).text
    for family in (
        "http_requests_total",
        "http_request_duration_seconds",
        "http_requests_in_progress",
        "sse_connections_active",
        "sse_messages_sent_total",
        "sse_errors_total",
        "memstack_dependency_up",
        "memstack_episodes_accepted_total",
        "memstack_episodes_rejected_total",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
