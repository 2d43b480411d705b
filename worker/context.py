"""Per-process worker state that job functions reach: settings, clients, metrics.

The worker runs jobs in its own process (SimpleWorker, no fork per job), so this state is
created once at start-up and shared by every job.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from neo4j import Driver
from psycopg_pool import ConnectionPool

from service.memory.extraction import Extractor
from service.memory.extractor import DeterministicExtractor
from service.memory.ingest import IngestDeps
from service.memory.llm_extractor import create_extractor
from service.settings import Settings
from service.stores.graph import create_worker_driver
from service.stores.postgres import create_worker_pool
from service.stores.queue import IngestQueue
from worker.metrics import WorkerMetrics


@dataclass(slots=True)
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    metrics: WorkerMetrics
    pool: ConnectionPool
    graph: Driver
    extractor: Extractor
    queue: IngestQueue

    @property
    def ingest_deps(self) -> IngestDeps:
        return IngestDeps(
            self.pool, self.graph, self.settings.neo4j_database, self.redis, self.extractor, self.queue
        )

    def close(self) -> None:
        self.graph.close()
        self.pool.close()
        self.redis.close()


def build_extractor(settings: Settings, connection: redis.Redis) -> Extractor:
    llm = create_extractor(settings, connection if settings.llm_cache_enabled else None)
    return llm if llm is not None else DeterministicExtractor()


def open_context(settings: Settings, connection: redis.Redis, metrics: WorkerMetrics) -> WorkerContext:
    pool = create_worker_pool(settings)
    pool.open(wait=False)
    graph = create_worker_driver(settings)
    extractor = build_extractor(settings, connection)
    return WorkerContext(
        settings, connection, metrics, pool, graph, extractor, IngestQueue(settings, connection)
    )


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("worker context is not initialised (run jobs through `python -m worker`)")
    return _current
