"""Worker bootstrap: logging, metrics server, heartbeat, then the RQ work loop."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from loguru import logger
from opentelemetry import trace
from rq import Queue, SimpleWorker
from rq.job import Job

from service.observability.logging import configure_logging
from service.observability.metrics import MetricsServer, disable_created_series
from service.observability.tracing import configure_tracing
from service.settings import Settings, SettingsError, load_settings
from service.stores.queue import WORKER_ALIVE_TTL_SECONDS, worker_alive_key
from service.stores.redis import QUEUE_NAME, create_sync_redis
from worker import context
from worker.heartbeat import Heartbeat
from worker.metrics import WorkerMetrics
from worker.reconciler import Reconciler

# RQ's dequeue blocks for (worker_ttl - 15) seconds, so this also bounds the idle heartbeat.
WORKER_TTL_SECONDS = 30
# How often a worker sweeps registries for jobs of dead workers (RQ's default is 600 s).
MAINTENANCE_INTERVAL_SECONDS = 60
# A no-op until ENABLE_TELEMETRY installs a tracer provider (configure_tracing).
_TRACER = trace.get_tracer("memstack.worker")


def _task_name(job: Job) -> str:
    try:
        return (job.func_name or "unknown").rsplit(".", 1)[-1]
    except Exception:  # undecodable job data: RQ itself reports it when it runs the job
        return "unknown"


class MemStackWorker(SimpleWorker):
    """Runs jobs in-process: no fork per job (~20 ms each), and metrics stay in this process."""

    pulse: Heartbeat | None = None
    memstack_metrics: WorkerMetrics | None = None

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        super().heartbeat(*args, **kwargs)
        if self.pulse is not None:
            self.pulse.progress()

    def execute_job(self, job: Job, queue: Queue) -> None:
        if self.pulse is not None:
            self.pulse.progress()
        if self.memstack_metrics is not None:
            self.memstack_metrics.busy.set(1)
        attributes = {"messaging.system": "rq", "messaging.destination.name": queue.name}
        try:
            with _TRACER.start_as_current_span(f"job {_task_name(job)}", attributes=attributes):
                super().execute_job(job, queue)
        finally:
            if self.memstack_metrics is not None:
                self.memstack_metrics.busy.set(0)
            if self.pulse is not None:
                self.pulse.progress()


def run_worker(settings: Settings, *, burst: bool = False) -> int:
    disable_created_series()
    tracer_provider = configure_tracing(settings)
    connection = create_sync_redis(settings)
    metrics = WorkerMetrics()
    metrics.watch_queues(connection, [QUEUE_NAME], settings.queue_max_size)
    ctx = context.open_context(settings, connection, metrics)
    context.install(ctx)
    server = MetricsServer(metrics.registry, settings.metrics_port, settings.metrics_host)
    if settings.enable_metrics:
        server.start()
    queue = Queue(QUEUE_NAME, connection=connection, default_timeout=settings.job_timeout_seconds)
    worker = MemStackWorker(
        [queue],
        connection=connection,
        worker_ttl=WORKER_TTL_SECONDS,
        maintenance_interval=MAINTENANCE_INTERVAL_SECONDS,
    )
    alive_key = worker_alive_key(worker.name)
    pulse = Heartbeat(
        Path(settings.worker_heartbeat_file),
        metrics.heartbeat,
        stall_after=settings.job_timeout_seconds + 60,
        on_beat=lambda: connection.set(alive_key, 1, ex=WORKER_ALIVE_TTL_SECONDS),
    )
    worker.pulse = pulse
    worker.memstack_metrics = metrics
    reconciler = Reconciler(ctx, ctx.queue)
    pulse.start()
    reconciler.start()
    logger.info(
        "worker {name} listening on {queue} (metrics on :{port})",
        name=worker.name,
        queue=QUEUE_NAME,
        port=settings.metrics_port,
    )
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
    finally:
        reconciler.stop()
        pulse.stop()
        server.stop()
        ctx.close()
        if tracer_provider is not None:
            tracer_provider.shutdown()  # flushes the spans still in the batch
    return 0


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"memstack worker: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    return run_worker(settings)
