"""A heartbeat thread: touches a file (liveness probe) and sets a gauge (alerting).

It beats only while the worker loop makes progress (dequeues, or runs a job that is still
within its timeout), so a wedged worker goes stale and its liveness probe fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger
from prometheus_client import Gauge


class Heartbeat:
    def __init__(
        self,
        path: Path,
        gauge: Gauge,
        stall_after: float,
        interval: float = 5.0,
        on_beat: Callable[[], object] | None = None,
    ) -> None:
        self._path = path
        self._on_beat = on_beat
        self._stall_after = stall_after
        self._last_progress = time.monotonic()
        self._gauge = gauge
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def progress(self) -> None:
        """Called by the worker loop whenever it is demonstrably alive."""
        self._last_progress = time.monotonic()

    @property
    def stalled(self) -> bool:
        return time.monotonic() - self._last_progress > self._stall_after

    def beat(self) -> None:
        if self.stalled:
            return
        self._path.touch()
        self._gauge.set(time.time())
        if self._on_beat is not None:
            try:
                self._on_beat()
            except Exception as exc:  # Redis may be briefly away; the next beat tries again
                logger.warning("heartbeat could not reach Redis: {error}", error=type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self._interval)

    def start(self) -> None:
        # WORKER_HEARTBEAT_FILE may name a directory of its own under the writable /tmp.
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)
        self._path.unlink(missing_ok=True)
