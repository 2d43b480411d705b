"""Per-process worker state that job functions reach: settings, clients, metrics.

The worker runs jobs in its own process (SimpleWorker, no fork per job), so this state is
created once at start-up and shared by every job.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from neo4j import Driver, GraphDatabase
from psycopg_pool import ConnectionPool

from service.memory.extraction import Extractor
from service.memory.extractor import DeterministicExtractor
from service.memory.ingest import IngestDeps
from service.memory.llm_extractor import create_extractor
from service.settings import Settings
from service.stores.graph import driver_target
from worker.metrics import WorkerMetrics


@dataclass(slots=True)
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    metrics: WorkerMetrics
    pool: ConnectionPool
    graph: Driver
    extractor: Extractor

    @property
    def ingest_deps(self) -> IngestDeps:
        return IngestDeps(self.pool, self.graph, self.settings.neo4j_database, self.redis, self.extractor)

    def close(self) -> None:
        self.graph.close()
        self.pool.close()
        self.redis.close()


def build_extractor(settings: Settings, connection: redis.Redis) -> Extractor:
    llm = create_extractor(settings, connection if settings.llm_cache_enabled else None)
    return llm if llm is not None else DeterministicExtractor()


def open_context(settings: Settings, connection: redis.Redis, metrics: WorkerMetrics) -> WorkerContext:
    pool = ConnectionPool(
        settings.postgres_conninfo,
        min_size=1,
        max_size=2,
        open=False,
        timeout=10.0,
        kwargs={"autocommit": True, "connect_timeout": 5},
        name="memstack-worker",
    )
    pool.open(wait=False)
    uri, options = driver_target(settings)
    graph = GraphDatabase.driver(
        uri, max_connection_pool_size=4, connection_timeout=5.0, max_transaction_retry_time=15.0, **options
    )
    return WorkerContext(settings, connection, metrics, pool, graph, build_extractor(settings, connection))


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("worker context is not initialised (run jobs through `python -m worker`)")
    return _current
