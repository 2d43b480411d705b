"""Start the API (or the edge-test app) as a uvicorn subprocess with a chosen environment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.conftest import REPO, RunningApi, free_port, local_environ, wait_for

EDGE_APP = "tests.integration.edge_app:create_test_app"


@contextmanager
def running_api(
    log_dir: Path, *, app: str = EDGE_APP, extra_args: tuple[str, ...] = (), **environ: str
) -> Iterator[RunningApi]:
    port, metrics_port = free_port(), free_port()
    log_path = log_dir / f"api-{port}.log"
    env = local_environ(**{"METRICS_PORT": str(metrics_port), "LOG_FORMAT": "json", **environ})
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--port", str(port), *extra_args]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
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
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
