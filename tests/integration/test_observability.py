"""Logs and traces of the real API: JSON lines with request ids, OTLP spans named by route,
and no secret in any log line."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from service.settings import SECRET_KEYS, Settings
from tests.support.client import Client
from tests.support.processes import ApiLauncher, WorkerLauncher
from tests.support.stack import local_environ


class OtlpCollector:
    """A minimal OTLP/HTTP trace receiver: decodes what the exporter posts to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, object]]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            attributes = {
                                a.key: a.value.string_value or a.value.int_value for a in span.attributes
                            }
                            collector.spans.append((span.name, attributes))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpCollector:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as running:
        yield running


def test_spans_are_named_by_route_template(
    collector: OtlpCollector, settings: Settings, tmp_path: Path, running_api: ApiLauncher
) -> None:
    telemetry = {"ENABLE_TELEMETRY": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    with running_api(tmp_path / "api.log", **telemetry) as api:
        auth = {"Authorization": f"Bearer {settings.memstack_bootstrap_api_key}"}
        project = httpx.post(
            f"{api.base_url}/api/v1/projects", json={"name": f"otel-{time.time_ns()}"}, headers=auth
        )
        project_id = project.json()["id"]
        assert httpx.get(f"{api.base_url}/api/v1/projects/{project_id}", headers=auth).status_code == 200
    # The batch processor flushes on shutdown.
    names = {name for name, _ in collector.spans}
    assert "GET /api/v1/projects/{project_id}" in names
    assert "POST /api/v1/projects" in names
    assert not any(project_id in name for name in names)  # ids never become span names
    route_span = next(a for n, a in collector.spans if n == "GET /api/v1/projects/{project_id}")
    assert route_span["http.response.status_code"] == 200


def test_no_tracing_unless_enable_telemetry(
    collector: OtlpCollector, tmp_path: Path, running_api: ApiLauncher
) -> None:
    # ENABLE_TELEMETRY is the switch (the chart opens the OTLP egress on it): an endpoint alone
    # exports nothing.
    with running_api(tmp_path / "api.log", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url) as api:
        httpx.get(f"{api.base_url}/health")
    assert collector.spans == []


@pytest.fixture
def redis_db_13(settings: Settings) -> Iterator[str]:
    """A queue of its own (other suites use 0, 3-6, 9, 12 and 14)."""
    connection = redis.Redis(
        host=settings.redis_host, port=settings.redis_port, password=settings.redis_password, db=13
    )
    connection.flushdb()
    yield "13"
    connection.flushdb()
    connection.close()


def test_worker_exports_a_span_per_job_when_telemetry_is_on(
    collector: OtlpCollector,
    settings: Settings,
    tmp_path: Path,
    redis_db_13: str,
    running_api: ApiLauncher,
    running_worker: WorkerLauncher,
) -> None:
    with running_api(tmp_path / "api.log", REDIS_DB=redis_db_13) as api:
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        assert client.post_episode(project, "Alice Smith works at Acme Corp.").status_code == 202
        telemetry = {"ENABLE_TELEMETRY": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        with running_worker(tmp_path / "worker.log", REDIS_DB=redis_db_13, **telemetry):
            client.wait_all(project, "completed", 1, timeout=60)
    # The worker flushes its batch on shutdown; the API (telemetry off) sent nothing.
    jobs = [attributes for name, attributes in collector.spans if name == "job ingest_episodes"]
    assert len(jobs) == 1, collector.spans
    assert jobs[0]["messaging.destination.name"] == "memstack:ingest"
    assert all(name.startswith("job ") for name, _ in collector.spans)


def test_json_logs_carry_request_ids_and_never_a_secret(
    settings: Settings, tmp_path: Path, running_api: ApiLauncher
) -> None:
    log_path = tmp_path / "api.log"
    with running_api(log_path, LOG_FORMAT="json", LOG_LEVEL="DEBUG") as api:
        auth = {
            "Authorization": f"Bearer {settings.memstack_bootstrap_api_key}",
            "X-Request-ID": "req-abc-123",
        }
        httpx.get(f"{api.base_url}/api/v1/projects", headers=auth)
        httpx.get(f"{api.base_url}/api/v1/projects", headers={"Authorization": "Bearer msk_wrong"})
        httpx.get(f"{api.base_url}/ready")
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line)["record"] for line in lines]  # every line is one JSON object
    access = [r for r in records if r["extra"].get("request_id") == "req-abc-123"]
    assert access
    assert "GET /api/v1/projects 200" in access[-1]["message"]
    text = log_path.read_text(encoding="utf-8")
    environ = local_environ()
    for key in SECRET_KEYS:
        if environ.get(key):
            assert environ[key] not in text, f"{key} leaked into the log"
