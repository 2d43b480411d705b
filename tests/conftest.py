"""The test suites' shared setup: the fixture plugins and the one marker scheme.

Markers follow the directory: everything under tests/integration is `integration` (it needs
the real PostgreSQL, Redis and Neo4j servers), so `-m "not integration"` runs what needs none.

Warnings are errors (pyproject.toml), and a socket or client a test leaves open warns only when
the garbage collector frees it: collecting right after each test's call makes that warning, and
so the failure, land on the test that leaked it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.support.fixtures"]

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        yield
    finally:
        gc.collect()
