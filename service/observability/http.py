"""The outermost ASGI layer: request id, one access log line, metrics and a span per request.

It wraps the whole Litestar app rather than sitting inside it, so that responses produced
before a handler runs (404 for unknown paths, 401 from auth, 429 from the rate limiter, 413
for oversized bodies) are counted with their real status.
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from litestar import Litestar
from loguru import logger
from opentelemetry import trace

from service.asgi import ASGIApp, Message, Receive, Scope, Send
from service.observability.metrics import UNMATCHED_ROUTE, ApiMetrics
from service.observability.tracing import current_trace_id

REQUEST_ID_HEADER = b"x-request-id"
_UNTRACKED_PATHS = frozenset({"/health", "/ready"})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            candidate: str = value.decode("latin-1")[:128]
            if candidate.isprintable() and candidate:
                return candidate
    return uuid.uuid4().hex


class ObservedApp:
    """ASGI callable wrapping the application; lifespan messages pass straight through."""

    def __init__(self, app: Litestar, metrics: ApiMetrics) -> None:
        self.litestar = app
        self.app = cast(ASGIApp, app)
        self.metrics = metrics
        self._tracer = trace.get_tracer("memstack.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        method = scope["method"]
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_progress.inc()
        with (
            logger.contextualize(request_id=request_id),
            self._tracer.start_as_current_span(f"{method} {scope['path']}") as span,
        ):
            try:
                await self.app(scope, receive, send_with_status)
            finally:
                elapsed = time.perf_counter() - started
                self.metrics.in_progress.dec()
                route = str(scope.get("path_template") or UNMATCHED_ROUTE)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.duration.labels(method, route).observe(elapsed)
                if scope["path"] not in _UNTRACKED_PATHS or status >= 400:
                    logger.bind(trace_id=current_trace_id()).info(
                        "{method} {path} {status} {ms:.1f}ms",
                        method=method,
                        path=scope["path"],
                        status=status,
                        ms=elapsed * 1000,
                    )
