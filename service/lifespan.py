"""Opens the pools, driver and clients once per process and closes them on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from loguru import logger
from opentelemetry.sdk.trace import TracerProvider

from service.api.auth_throttle import AuthThrottle
from service.api.events import create_event_hub
from service.auth.cache import KeyCache
from service.gc_tuning import tune_for_server
from service.memory.accept import EpisodeIntake, IntakeDeps
from service.observability.metrics import ApiMetrics, MetricsServer
from service.readiness import watch_dependencies
from service.resources import Resources
from service.settings import Settings
from service.stores.graph import create_driver
from service.stores.postgres import create_pool
from service.stores.queue import IngestQueue
from service.stores.redis import create_async_redis, create_sync_redis


def lifespan_for(
    settings: Settings, metrics: ApiMetrics, tracer_provider: TracerProvider | None = None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        metrics_server = MetricsServer(metrics.registry, settings.metrics_port, settings.metrics_host)
        if settings.enable_metrics:
            metrics_server.start()
        pool = create_pool(settings)
        # wait=False: the API starts (and reports not-ready) even while PostgreSQL is down.
        await pool.open(wait=False)
        graph = create_driver(settings)
        redis = create_async_redis(settings)
        queue_connection = create_sync_redis(settings)
        queue = IngestQueue(settings, queue_connection, redis)
        auth_throttle = AuthThrottle(settings)
        intake = EpisodeIntake(IntakeDeps(pool, queue, metrics))
        event_hub = create_event_hub(redis, metrics)
        metrics.sse_readers.set_function(event_hub.reader_count)
        resources = Resources(
            settings,
            metrics,
            pool,
            graph,
            redis,
            queue_connection,
            queue,
            KeyCache(),
            auth_throttle,
            intake,
            event_hub=event_hub,
        )
        app.state.resources = resources
        logger.info(
            "memstack API started (environment={env}, metrics on {host}:{port})",
            env=settings.environment,
            host=settings.metrics_host,
            port=settings.metrics_port,
        )
        watcher = asyncio.create_task(watch_dependencies(resources.readiness), name="dependency-watch")
        tune_for_server()
        try:
            yield
        finally:
            watcher.cancel()
            await event_hub.aclose()
            await intake.aclose()
            await redis.aclose()
            await auth_throttle.aclose()
            queue_connection.close()
            await graph.close()
            await pool.close()
            metrics_server.stop()
            if tracer_provider is not None:
                tracer_provider.shutdown()  # flushes the spans still in the batch
            logger.info("memstack API stopped")

    return lifespan
