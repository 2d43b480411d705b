"""Fixtures for tests against the real servers (a pytest plugin, loaded by tests/conftest.py).

- `settings`: the local stack's Settings.
- `running_api`, `running_worker`: start a real API or worker with overridden settings, as
  context managers (see `tests.support.processes`): `with running_api(tmp_path, X="1") as api:`.
- `api`: one API process shared by the whole session.
- `worker`: one worker per test module that asks for it.
- `isolated_db`: a Redis database number of the test's own (parametrize it, `indirect=True`),
  emptied before and after, so the test's queue is drained by no other worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

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


@pytest.fixture
def isolated_db(settings: Settings, request: pytest.FixtureRequest) -> Iterator[str]:
    db = str(request.param)
    connection = redis.Redis(
        host=settings.redis_host, port=settings.redis_port, password=settings.redis_password, db=int(db)
    )
    connection.flushdb()
    yield db
    connection.flushdb()
    connection.close()
