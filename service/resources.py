"""What the API process opens once (pools, driver, clients) and the narrow views handed out.

`Resources` is built by the lifespan and kept in the app's state; handlers never receive it
whole. Each receives by dependency injection only what it uses (see `service.app`): the
PostgreSQL pool, the graph reader, or the deps struct of one domain operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from neo4j import AsyncDriver
from psycopg_pool import AsyncConnectionPool
from redis import Redis as SyncRedis

from service.api.auth import AuthDeps
from service.api.auth_throttle import AuthThrottle
from service.auth.cache import KeyCache
from service.memory.accept import EpisodeIntake
from service.memory.erasure import ErasureDeps
from service.observability.metrics import ApiMetrics
from service.readiness import ReadinessDeps
from service.settings import Settings
from service.stores.event_hub import EventHub
from service.stores.graph_reads import GraphReader
from service.stores.queue import IngestQueue


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    metrics: ApiMetrics
    pool: AsyncConnectionPool
    graph: AsyncDriver
    redis: aioredis.Redis
    sync_redis: SyncRedis
    """Synchronous, for RQ (which needs bytes) and the LLM cache; used from worker threads."""
    queue: IngestQueue
    key_cache: KeyCache
    auth_throttle: AuthThrottle
    intake: EpisodeIntake
    """Accepts episodes; one per process, so concurrent requests are written together."""
    event_hub: EventHub
    """One reader per project fanning its event stream out to every SSE client of this process."""

    @property
    def auth(self) -> AuthDeps:
        return AuthDeps(
            self.pool, self.key_cache, self.auth_throttle, self.settings.memstack_bootstrap_api_key
        )

    @property
    def erasure(self) -> ErasureDeps:
        return ErasureDeps(
            self.pool,
            self.graph,
            self.settings.neo4j_database,
            self.redis,
            self.sync_redis,
            self.queue,
            busy_window=timedelta(seconds=self.settings.job_timeout_seconds),
        )

    @property
    def reader(self) -> GraphReader:
        return GraphReader(self.graph, self.settings.neo4j_database)

    @property
    def readiness(self) -> ReadinessDeps:
        return ReadinessDeps(
            self.pool, self.redis, self.graph, self.settings.neo4j_database, self.metrics.dependency_up
        )
