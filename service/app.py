"""The application factory: `uvicorn service.app:create_app --factory`.

Importing this module has no side effects; everything happens in `create_app`.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from opentelemetry.sdk.trace import TracerProvider

from service.api.auth import provide_principal
from service.api.body import EdgeRequest
from service.api.deps import Caller
from service.api.docs import openapi_config
from service.api.episodes import EpisodeController
from service.api.errors import EXCEPTION_HANDLERS, document_problems
from service.api.events import EventController
from service.api.graph import GraphController
from service.api.health import HealthController
from service.api.projects import ProjectController
from service.api.ratelimit import rate_limit_middleware
from service.api.search import SearchController
from service.api.tenants import ApiKeyController, TenantController
from service.lifespan import lifespan_for
from service.memory.accept import TenantIntake
from service.observability.http import ObservedApp
from service.observability.logging import configure_logging
from service.observability.metrics import ApiMetrics, disable_created_series
from service.observability.tracing import configure_tracing
from service.resources import Resources
from service.settings import Settings, load_settings

API_VERSION = "0.1.0"


def _view(pick: Callable[[Resources], object]) -> Provide:
    """A dependency taken from the process's Resources (opened by the lifespan)."""

    def provide(state: State) -> object:
        return pick(state.resources)

    return Provide(provide, sync_to_thread=False)


def provide_intake(state: State, principal: Caller) -> TenantIntake:
    """The intake bound to the caller. Depending on `principal` also chains the POST handlers'
    dependencies (auth, then principal, then intake): Litestar resolves a level holding two or
    more of them in an anyio task group, which cost ~10 % of the accept path's CPU (py-spy)."""
    resources: Resources = state.resources
    return TenantIntake(resources.intake, principal.tenant_id)


# What handlers may ask for, each by name (`NamedDependency`): never the whole of Resources.
DEPENDENCIES = {
    "pool": _view(lambda r: r.pool),
    "redis": _view(lambda r: r.redis),
    "metrics": _view(lambda r: r.metrics),
    "event_hub": _view(lambda r: r.event_hub),
    "key_cache": _view(lambda r: r.key_cache),
    "auth": _view(lambda r: r.auth),
    "erasure": _view(lambda r: r.erasure),
    "reader": _view(lambda r: r.reader),
    "readiness": _view(lambda r: r.readiness),
}


def api_router() -> Router:
    """Everything under /api/v1 needs an API key; `intake` is the caller's (`provide_intake`)."""
    router = Router(
        path="/api/v1",
        route_handlers=[
            TenantController,
            ApiKeyController,
            ProjectController,
            EpisodeController,
            EventController,
            SearchController,
            GraphController,
        ],
        dependencies={
            "principal": Provide(provide_principal),
            "intake": Provide(provide_intake, sync_to_thread=False),
        },
        security=[{"BearerAuth": []}],
    )
    return document_problems(router)


def build_litestar(
    settings: Settings, metrics: ApiMetrics, tracer_provider: TracerProvider | None = None
) -> Litestar:
    cors = (
        CORSConfig(allow_origins=list(settings.api_allowed_origins)) if settings.api_allowed_origins else None
    )
    return Litestar(
        route_handlers=[HealthController, api_router()],
        dependencies=DEPENDENCIES,
        lifespan=[lifespan_for(settings, metrics, tracer_provider)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        cors_config=cors,
        request_max_body_size=settings.api_max_body_bytes,
        openapi_config=openapi_config(API_VERSION),
        middleware=[rate_limit_middleware(settings)],
        logging_config=None,
        request_class=EdgeRequest,
    )


def create_app(settings: Settings | None = None) -> ObservedApp:
    settings = settings or load_settings()
    configure_logging(settings)
    tracer_provider = configure_tracing(settings)
    disable_created_series()
    metrics = ApiMetrics()
    return ObservedApp(build_litestar(settings, metrics, tracer_provider), metrics)
