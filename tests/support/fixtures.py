"""Fixtures for tests against the real servers (a pytest plugin, loaded by tests/conftest.py).

- `settings`: the local stack's Settings.
- `running_api`, `running_worker`: start a real API or worker with overridden settings, as
  context managers (see `tests.support.processes`): `with running_api(tmp_path, X="1") as api:`.
- `api`: one API process shared by the whole session.
- `worker`: one worker per test module that asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.settings import Settings, load_settings
from tests.support import processes
from tests.support.processes import ApiLauncher, RunningApi, RunningWorker, WorkerLauncher
from tests.support.stack import local_environ


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(local_environ(), dotenv=None)


@pytest.fixture(scope="session")
def running_api() -> ApiLauncher:
    return processes.running_api


@pytest.fixture(scope="session")
def running_worker() -> WorkerLauncher:
    return processes.running_worker


@pytest.fixture(scope="session")
def api(running_api: ApiLauncher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with running_api(tmp_path_factory.mktemp("api") / "api.log") as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory, running_worker: WorkerLauncher
) -> Iterator[RunningWorker]:
    with running_worker(tmp_path_factory.mktemp("worker") / "worker.log") as running:
        yield running
