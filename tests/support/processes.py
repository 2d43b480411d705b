"""The real API (uvicorn) and the real worker (`python -m worker`) as subprocesses on free ports.

`running_api` and `running_worker` are context managers that start the process with the
local stack's environment plus the given overrides, wait until it answers, and stop it on
exit. Tests receive them as the fixtures of the same names (`tests.support.fixtures`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from tests.support.stack import REPO, free_port, local_environ, wait_for

SERVICE_APP = "service.app:create_app"


@dataclass(frozen=True)
class RunningApi:
    base_url: str
    metrics_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 10.0) -> str:
        """The log once it holds `text`: the access line is written after the response is sent."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return log


@dataclass(frozen=True)
class RunningWorker:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class ApiLauncher(Protocol):
    def __call__(
        self, log: Path, *, app: str = SERVICE_APP, **overrides: str
    ) -> AbstractContextManager[RunningApi]: ...


class WorkerLauncher(Protocol):
    def __call__(self, log_path: Path, **overrides: str) -> AbstractContextManager[RunningWorker]: ...


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_api(log: Path, *, app: str = SERVICE_APP, **overrides: str) -> Iterator[RunningApi]:
    """The API (`app`, a uvicorn factory) on free ports, with the given settings overridden.

    `log` is the log file, or a directory to hold `api-<port>.log`. Tests share one key, so
    the per-key rate limit is off unless the overrides turn it on. uvicorn runs with
    `--no-proxy-headers`: the service alone decides what X-Forwarded-For is worth.
    """
    port, metrics_port = free_port(), free_port()
    log_path = log / f"api-{port}.log" if log.is_dir() else log
    environ = local_environ(
        **{"METRICS_PORT": str(metrics_port), "LOG_FORMAT": "json", "RATE_LIMIT_PER_MINUTE": "0", **overrides}
    )
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--port", str(port), "--no-proxy-headers"]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, env=environ, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    running = RunningApi(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process, log_path
    )
    try:
        try:
            wait_for(f"{running.base_url}/health", timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- API log ---\n{running.log()[-3000:]}") from None
        yield running
    finally:
        _stop(process, timeout=30)


@contextmanager
def running_worker(log_path: Path, **overrides: str) -> Iterator[RunningWorker]:
    """The worker with its metrics on a free port, once they answer."""
    port = free_port()
    environ = local_environ(METRICS_PORT=str(port), LOG_FORMAT="text", **overrides)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=environ, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO
        )
    worker = RunningWorker(process, f"http://127.0.0.1:{port}/metrics", log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(worker.metrics_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, worker.log()
            assert time.monotonic() < deadline, "worker metrics never came up"
            time.sleep(0.2)
        yield worker
    finally:
        _stop(process, timeout=60)
