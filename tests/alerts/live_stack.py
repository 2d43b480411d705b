"""What the live alert test starts: TCP proxies in front of the databases, the API and worker as
subprocesses, a real Prometheus server, and a client for Prometheus' HTTP API.

Everything here is started on loopback, on free ports, and stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chart_tools import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def local_environ(**overrides: str) -> dict[str, str]:
    """This process' environment with the local stack's credentials filled in where unset."""
    environ = {**read_env_file(REPO / "ci" / "local.env"), **os.environ}
    environ.update(overrides)
    return environ


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
    """Poll until check() is true; returns the seconds it took."""
    started = time.monotonic()
    last_error = ""
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            last_error = repr(exc)
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} {last_error}".rstrip())


class TcpProxy:
    """A TCP forwarder whose plug can be pulled: cut() closes the listener (new connections
    are refused) and resets every open connection, as a dead server would; restore() listens
    again on the same port. `delay` (seconds) holds back every answer of the server, as a slow
    network or an overloaded server would. TLS passes through untouched (end to end)."""

    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", listen_host: str = "127.0.0.1"
    ) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = free_port()
        self.delay = 0.0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.port))
        listener.listen(128)
        listener.settimeout(0.2)
        self._stop = threading.Event()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True).start()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool = False) -> None:
        try:
            while data := source.recv(65536):
                if answers and self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # The first direction to end closes both; the other then ends on its closed socket.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with self._lock:
                    self._sockets.discard(sock)
                sock.close()

    def cut(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):
                sock.close()

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def close(self) -> None:
        self.cut()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Process:
    """A subprocess with its log file; stop() ends it by PID (TERM, then KILL)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # A session of its own: stop() signals the whole process group, which includes the
            # RQ scheduler the worker forks (it would outlive a SIGKILLed worker and keep the
            # inherited metrics socket bound).
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        """Signal the process group led by our PID; whatever is left after `timeout` is killed."""
        if self.popen is None:
            return
        pgid = self.popen.pid  # the session leader: its PID is the group's id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self.popen = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


def api_process(log_dir: Path, port: int, metrics_port: int, env: dict[str, str]) -> Process:
    command = [
        sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return Process("api", command, {**env, "METRICS_PORT": str(metrics_port)}, log_dir / "api.log")


def worker_process(log_dir: Path, metrics_port: int, env: dict[str, str]) -> Process:
    command = [sys.executable, "-m", "worker"]
    return Process("worker", command, {**env, "METRICS_PORT": str(metrics_port)}, log_dir / "worker.log")


def prometheus_binary() -> str:
    found = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not found or not Path(found).exists():
        raise RuntimeError(
            "the Prometheus server is missing: ci/alerts-test.sh installs Debian's `prometheus`"
        )
    return found


class PrometheusApi:
    """The few HTTP API calls the tests make."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self.client.close()

    def _data(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = self.client.get(path, params=params)
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self._data("/api/v1/query", {"query": expr})
        assert data["resultType"] in {"vector", "scalar"}, data
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self._data(f"/api/v1/label/{label}/values", {"match[]": match})
        return values

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._data("/api/v1/targets")["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        groups = self._data("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._data("/api/v1/alerts")["alerts"]
        return alerts

    def firing(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]

    def active(self, name: str) -> list[dict[str, Any]]:
        """Pending or firing."""
        return [a for a in self.alerts() if a["labels"]["alertname"] == name]


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    try:
        for process in processes:
            process.start()
        yield
    finally:
        for process in reversed(processes):
            process.stop()
