"""Per-process worker state that job functions reach: settings, clients, metrics.

The worker runs jobs in its own process (SimpleWorker, no fork per job), so this state is
created once at start-up and shared by every job.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from service.settings import Settings
from worker.metrics import WorkerMetrics


@dataclass(slots=True)
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    metrics: WorkerMetrics


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("worker context is not initialised (run jobs through `python -m worker`)")
    return _current
