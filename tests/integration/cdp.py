"""A headless Chromium, cut off from every network but loopback, driven over the DevTools protocol.

Isolation, belt and braces:
- `--host-resolver-rules` makes every name but 127.0.0.1 unresolvable;
- `--proxy-server` points at `TrapProxy`, a listener in the test that records and refuses
  every connection (Chromium sends everything but loopback to the proxy);
- the DevTools `Network` events list every request the page made: that list is what the
  tests judge (the proxy also sees Chromium's own background services, such as the
  component updater and sign-in checks, which no command-line flag fully silences).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1280,1800",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-default-apps",
    "--no-pings",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class TrapProxy:
    """Accepts connections on loopback, records the first request line, and closes them."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    self.requests.append(conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1"))

    def close(self) -> None:
        self._server.close()


class Cdp:
    """A minimal DevTools protocol session on one page: commands in order, events collected."""

    def __init__(self, socket_: ClientConnection) -> None:
        self.socket = socket_
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message_id = self._next_id
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message: dict[str, Any] = json.loads(
                self.socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            )
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def wait_for_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        seen = len(self.events)
        for event in self.events[:seen]:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message: dict[str, Any] = json.loads(
                self.socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            )
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message
        raise TimeoutError(f"no {method} within {timeout}s")

    def _receive(self, deadline: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        return message

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]

    def failed_loads(self) -> list[str]:
        requests = {
            e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        }
        return [
            f"{requests.get(e['params']['requestId'], '?')}: {e['params'].get('errorText')}"
            for e in self.events
            if e["method"] == "Network.loadingFailed"
        ]

    def exceptions(self) -> list[str]:
        return [
            str(e["params"]["exceptionDetails"].get("exception", {}).get("description", e["params"]))
            for e in self.events
            if e["method"] == "Runtime.exceptionThrown"
        ]

    def reset_events(self) -> None:
        self.events.clear()


@contextmanager
def isolated_chromium(workdir: Path, proxy: TrapProxy) -> Iterator[Cdp]:
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium is not installed: run `bash ci/install-chromium.sh`")
    profile = workdir / "profile"
    profile.mkdir()
    log_path = workdir / "chromium.log"
    command = [
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(target for target in targets if target["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as ws:
            session = Cdp(ws)
            for domain in ("Network", "Page", "Runtime"):
                session.send(f"{domain}.enable")
            yield session
    finally:
        # chromium's helper processes share its session: end the group this test started
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
