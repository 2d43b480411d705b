"""The API as `create_app` builds it, plus one test-only body-echo route, for the edge tests.

`uvicorn tests.integration.edge_app:create_test_app --factory`: the real wiring (rate limiter,
offline docs, CORS, body limit) with an echo route to send bodies to.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post
from litestar.middleware import DefineMiddleware

from service.api.docs import OfflineSwaggerRenderPlugin
from service.api.ratelimit import RateLimitMiddleware
from service.app import build_litestar
from service.observability.http import ObservedApp
from service.observability.logging import configure_logging
from service.observability.metrics import ApiMetrics, disable_created_series
from service.settings import load_settings

ECHO_PATH = "/_test/echo"
EDGE_APP = "tests.integration.edge_app:create_test_app"


@post(ECHO_PATH, status_code=200, include_in_schema=False)
async def echo(request: Request[Any, Any, Any]) -> dict[str, int]:
    body = await request.body()
    return {"bytes": len(body)}


def is_wired(app: Litestar) -> bool:
    limiter = any(
        isinstance(item, DefineMiddleware) and item.middleware is RateLimitMiddleware
        for item in app.middleware
    )
    plugins = app.openapi_config.render_plugins if app.openapi_config else ()
    docs = any(isinstance(plugin, OfflineSwaggerRenderPlugin) for plugin in plugins)
    return limiter and docs


def create_test_app() -> ObservedApp:
    settings = load_settings()
    configure_logging(settings)
    disable_created_series()
    metrics = ApiMetrics()
    app = build_litestar(settings, metrics)
    app.register(echo)
    return ObservedApp(app, metrics)
