"""The local stack the tests run against (see ci/infra.sh): environment, ports, servers, waiting.

Plain functions, importable from anywhere (the bench scripts and the node suite use them too);
tests reach processes through the fixtures of `tests.support.fixtures`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from service.settings import read_dotenv

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
