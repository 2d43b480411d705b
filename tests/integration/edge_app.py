"""The API as `create_app` builds it, plus one test-only body-echo route, for the edge tests.

`uvicorn tests.integration.edge_app:create_test_app --factory`. When `build_litestar` does
not yet wire the rate limiter and the offline docs (issue 5), an equivalent app is built here
from the same parts, so these tests exercise the pieces either way; once wired, they exercise
the real wiring.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware

from service.api.docs import OfflineSwaggerRenderPlugin, openapi_config
from service.api.errors import EXCEPTION_HANDLERS
from service.api.health import HealthController
from service.api.ratelimit import RateLimitMiddleware, rate_limit_middleware
from service.app import API_VERSION, build_litestar, provide_resources
from service.lifespan import lifespan_for
from service.observability.http import ObservedApp
from service.observability.logging import configure_logging
from service.observability.metrics import ApiMetrics, disable_created_series
from service.settings import Settings, load_settings

ECHO_PATH = "/_test/echo"


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


def _standalone(settings: Settings, metrics: ApiMetrics) -> Litestar:
    cors = (
        CORSConfig(allow_origins=list(settings.api_allowed_origins)) if settings.api_allowed_origins else None
    )
    return Litestar(
        route_handlers=[HealthController],
        dependencies={"resources": Provide(provide_resources, sync_to_thread=False)},
        lifespan=[lifespan_for(settings, metrics)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        cors_config=cors,
        request_max_body_size=settings.api_max_body_bytes,
        openapi_config=openapi_config(API_VERSION),
        middleware=[rate_limit_middleware(settings)],
        logging_config=None,
    )


def create_test_app() -> ObservedApp:
    settings = load_settings()
    configure_logging(settings)
    disable_created_series()
    metrics = ApiMetrics()
    app = build_litestar(settings, metrics)
    if not is_wired(app):
        app = _standalone(settings, metrics)
    app.register(echo)
    return ObservedApp(app, metrics)
