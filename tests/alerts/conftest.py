"""Alert tests: promtool unit tests on the rendered rules and a live Prometheus.

They run through `ci/alerts-test.sh` (`make alerts-test`), which installs helm, promtool and the
Prometheus server and sets MEMSTACK_ALERTS_TEST=1; under a plain `pytest tests` they are
skipped with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MEMSTACK_ALERTS_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="alert tests run through ci/alerts-test.sh (make alerts-test)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


# (phase, event, seconds) recorded by the live test, printed after the run.
TIMINGS: list[tuple[str, str, float]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("live alert timings (seconds after the fault / the recovery)")
    for phase, event, seconds in TIMINGS:
        terminalreporter.write_line(f"{phase:>13}  {seconds:6.1f}s  {event}")
