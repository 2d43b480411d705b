"""Prometheus metrics of the API. Names and labels are a contract: alerts and dashboards use them."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from threading import Thread
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DEPENDENCIES: Final = ("postgres", "redis", "neo4j")
UNMATCHED_ROUTE: Final = "unmatched"
METRICS_PATH: Final = "/metrics"


def disable_created_series() -> None:
    """Drop the `*_created` series: they double the exposition and nothing here reads them."""
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class ApiMetrics:
    """Every API metric, in a registry of its own so that each app instance is independent."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge("http_requests_in_progress", "HTTP requests being served.", registry=r)
        self.sse_active = Gauge("sse_connections_active", "Open Server-Sent Events streams.", registry=r)
        self.sse_sent = Counter("sse_messages_sent", "Server-Sent Events messages written.", registry=r)
        self.sse_errors = Counter("sse_errors", "Server-Sent Events streams ended by an error.", registry=r)
        self.sse_readers = Gauge(
            "sse_readers_active", "Event stream readers (one per project with open streams).", registry=r
        )
        self.dependency_up = Gauge(
            "memstack_dependency_up",
            "1 when the dependency answered the last readiness check.",
            ["dependency"],
            registry=r,
        )
        self.episodes_accepted = Counter(
            "memstack_episodes_accepted", "Episodes accepted and queued.", registry=r
        )
        self.episodes_rejected = Counter(
            "memstack_episodes_rejected", "Episodes refused, by reason.", ["reason"], registry=r
        )
        for dependency in DEPENDENCIES:
            self.dependency_up.labels(dependency).set(0)
        # Known label values start at 0, so that rate() sees the very first rejection.
        for reason in ("queue_full", "queue_unavailable"):
            self.episodes_rejected.labels(reason)


def metrics_only(app: WSGIApplication) -> WSGIApplication:
    """`app` at /metrics (GET or HEAD); 404 for any other path, 405 for other methods."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return _plain(start_response, "404 Not Found", b"Not Found: metrics are served at /metrics\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"Method Not Allowed\n", ("Allow", "GET"))
        return app(environ, start_response)

    return serve


def _plain(start_response: StartResponse, status: str, body: bytes, *extra: tuple[str, str]) -> list[bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra]
    start_response(status, headers)
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class MetricsServer:
    """The /metrics endpoint on its own address and port, served from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
        self._registry = registry
        self._port = port
        self._host = host
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET

        class Server(ThreadingWSGIServer):
            address_family = family

        app = metrics_only(make_wsgi_app(self._registry))
        self._server = make_server(self._host, self._port, app, Server, handler_class=_QuietHandler)
        self._thread = Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
