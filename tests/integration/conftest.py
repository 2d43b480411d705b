"""Fixtures that run the real service against the real local servers (see ci/infra.sh)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.settings import Settings, load_settings, read_dotenv

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def local_environ(**overrides: str) -> dict[str, str]:
    """The process environment, with the local stack's credentials filled in where unset."""
    environ = {**read_dotenv(REPO / "ci" / "local.env"), **os.environ}
    if "NEO4J_BOLT_PORT" in environ and "NEO4J_URI" not in environ:  # as ci/lib.sh does
        environ["NEO4J_URI"] = f"bolt://127.0.0.1:{environ['NEO4J_BOLT_PORT']}"
    environ.update(overrides)
    return environ


def server_ctl(server: str, action: str) -> None:
    """Start or stop one of the local servers through the same scripts `make infra-up` uses."""
    subprocess.run(["bash", str(REPO / "ci" / f"{server}.sh"), action], check=True, env=local_environ())


def wait_for(url: str, *, status: int = 200, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5.0)
            if response.status_code == status:
                return response
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.25)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


@dataclass(frozen=True)
class RunningApi:
    base_url: str
    metrics_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(local_environ(), dotenv=None)


@contextmanager
def running_api(log_path: Path, **overrides: str) -> Iterator[RunningApi]:
    """The real API under uvicorn, on free ports, with the given settings overridden."""
    port, metrics_port = free_port(), free_port()
    # Tests share one key, so the per-key limit is off unless a test turns it on.
    environ = local_environ(
        **{"METRICS_PORT": str(metrics_port), "LOG_FORMAT": "json", "RATE_LIMIT_PER_MINUTE": "0", **overrides}
    )
    command = [
        *(sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"),
        *("--port", str(port), "--no-proxy-headers"),
    ]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, env=environ, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    running = RunningApi(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process, log_path
    )
    try:
        wait_for(f"{running.base_url}/health", timeout=30)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with running_api(tmp_path_factory.mktemp("api") / "api.log") as running:
        yield running
