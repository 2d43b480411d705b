"""The documentation page renders in a real headless Chromium with every network but loopback cut off."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cdp import Cdp, TrapProxy, chromium_binary, isolated_chromium
from tests.integration.edge_app import EDGE_APP
from tests.support.processes import ApiLauncher, RunningApi

OPERATIONS_JS = """JSON.stringify(Array.from(document.querySelectorAll('.opblock')).map(block => ({
  method: block.querySelector('.opblock-summary-method')?.textContent,
  path: block.querySelector('.opblock-summary-path')?.getAttribute('data-path'),
  summary: block.querySelector('.opblock-summary-description')?.textContent,
})))"""


@pytest.fixture(scope="module")
def docs_api(tmp_path_factory: pytest.TempPathFactory, running_api: ApiLauncher) -> Iterator[RunningApi]:
    with running_api(tmp_path_factory.mktemp("docs"), app=EDGE_APP) as api:
        yield api


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[Cdp, TrapProxy]]:
    if chromium_binary() is None:
        pytest.fail("chromium is not installed: run `bash ci/install-chromium.sh`")
    proxy = TrapProxy()
    try:
        with isolated_chromium(tmp_path, proxy) as cdp:
            yield cdp, proxy
    finally:
        proxy.close()


def load(cdp: Cdp, url: str) -> None:
    cdp.reset_events()
    cdp.send("Page.navigate", url=url)
    cdp.wait_for_event("Page.loadEventFired", timeout=60)


def operations(cdp: Cdp, expected: set[str], timeout: float = 30.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        found = json.loads(cdp.evaluate(OPERATIONS_JS) or "[]")
        if expected <= {item["path"] for item in found}:
            break
        time.sleep(0.2)
    return found


def external(cdp: Cdp, base_url: str) -> list[str]:
    return [url for url in cdp.requested_urls() if not url.startswith((f"{base_url}/", "data:", "about:"))]


def test_operations_render_offline(
    docs_api: RunningApi, browser: tuple[Cdp, TrapProxy], tmp_path: Path
) -> None:
    cdp, proxy = browser
    load(cdp, f"{docs_api.base_url}/schema")
    found = operations(cdp, {"/health", "/ready"})

    screenshot = tmp_path / "schema.png"
    screenshot.write_bytes(base64.b64decode(cdp.send("Page.captureScreenshot", format="png")["data"]))
    if artifacts := os.environ.get("MEMSTACK_ARTIFACTS_DIR"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / "schema-page.png")

    by_path = {item["path"]: item for item in found}
    assert {"/health", "/ready"} <= set(by_path), f"operations rendered: {found}"
    assert by_path["/health"]["method"] == "GET"
    assert "Liveness" in by_path["/health"]["summary"]
    assert cdp.evaluate("document.title") == "MemStack API"
    assert "MemStack API" in cdp.evaluate("document.querySelector('.swagger-ui .info .title')?.textContent")

    requested = cdp.requested_urls()
    assert f"{docs_api.base_url}/schema/assets/swagger-ui-bundle.js" in requested
    assert f"{docs_api.base_url}/schema/assets/swagger-ui.css" in requested
    assert external(cdp, docs_api.base_url) == []
    assert cdp.failed_loads() == []
    assert cdp.exceptions() == []
    # The proxy also sees Chromium's own background services (component updater, sign-in),
    # which no flag fully silences; it refuses them. What the page asked for is above.
    assert not [line for line in proxy.requests if "jsdelivr" in line or "unpkg" in line]


def test_the_harness_catches_an_external_asset(browser: tuple[Cdp, TrapProxy], docs_api: RunningApi) -> None:
    """A page that pulls a script from a CDN is caught three ways, so the test above can fail."""
    cdp, proxy = browser
    page = "<html><head><script src='https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js'>"
    load(cdp, f"data:text/html,{page}</script></head><body>cdn</body></html>")
    assert external(cdp, docs_api.base_url) == [
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
    ]
    assert cdp.failed_loads()
    deadline = time.monotonic() + 5
    while not [line for line in proxy.requests if "cdn.jsdelivr.net" in line] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [line for line in proxy.requests if "cdn.jsdelivr.net" in line]
