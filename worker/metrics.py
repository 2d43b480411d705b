"""Worker metrics. Names are a contract shared with the chart's alerts and dashboard."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue

from service.stores.queue import INGEST_TASK

JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class QueueCollector(Collector):
    """Reads the queue length from Redis at scrape time, so the value is never stale."""

    def __init__(self, connection: redis.Redis, queue_names: list[str], max_size: int) -> None:
        self._connection = connection
        self._queue_names = queue_names
        self._max_size = max_size

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("memstack_queue_size", "Jobs waiting in the queue.", labels=["queue"])
        limit = GaugeMetricFamily(
            "memstack_queue_max_size", "Jobs the API lets the queue hold (QUEUE_MAX_SIZE).", labels=["queue"]
        )
        for name in self._queue_names:
            limit.add_metric([name], self._max_size)
            try:
                size.add_metric([name], Queue(name, connection=self._connection).count)
            except redis.RedisError as exc:
                # No sample rather than a wrong one: absent data is visible, a fake 0 is not.
                logger.warning("queue size unavailable: {error}", error=type(exc).__name__)
        yield size
        yield limit


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "memstack_jobs", "Jobs finished, by task and outcome.", ["task", "status"], registry=r
        )
        self.job_duration = Histogram(
            "memstack_job_duration_seconds",
            "Job run time by task.",
            ["task"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        # Known label values start at 0, so that rate() sees the very first failure.
        for status in ("succeeded", "failed", "retried"):
            self.jobs.labels(INGEST_TASK, status)
        self.busy = Gauge("memstack_worker_busy", "1 while the worker runs a job.", registry=r)
        self.heartbeat = Gauge(
            "memstack_worker_last_heartbeat_timestamp_seconds",
            "Unix time of the worker's last heartbeat.",
            registry=r,
        )

    def watch_queues(self, connection: redis.Redis, queue_names: list[str], max_size: int) -> None:
        self.registry.register(QueueCollector(connection, queue_names, max_size))
