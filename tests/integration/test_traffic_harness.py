"""The traffic harness (tests/node/traffic.py) against the real API and worker.

It has to prove "nothing lost, nothing doubled" across restarts, so it is shown both ways:
an API restart mid-run must come out clean (the load retries with the same keys, the event
follower resumes with Last-Event-ID), and an episode deleted behind its back, an episode
nobody accepted and a follower that missed events must each be reported.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.memory.extractor import DeterministicExtractor
from service.settings import Settings
from tests.node.traffic import (
    EpisodeLoad,
    EventFollower,
    episode_content,
    expected_graph,
    setup_project,
    verify,
)
from tests.support.client import project_graph
from tests.support.processes import WorkerLauncher
from tests.support.stack import REPO, free_port, local_environ, wait_for

REDIS_DB = "12"  # a queue of its own: other suites use 0, 3-6, 9 and 14
QUEUE_MAX_SIZE = 10


@pytest.fixture(scope="module")
def redis_db(settings: Settings) -> Iterator[str]:
    connection = redis.Redis(
        host=settings.redis_host, port=settings.redis_port, password=settings.redis_password, db=int(REDIS_DB)
    )
    connection.flushdb()
    yield REDIS_DB
    connection.flushdb()
    connection.close()


class ApiOnFixedPort:
    """The real API under uvicorn that can be stopped and started again on the same port,
    as the chart runs it (graceful shutdown bounded, so open event streams are cut)."""

    def __init__(self, log_dir: Path, **environ: str) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.environ = local_environ(
            METRICS_PORT=str(self.metrics_port), LOG_FORMAT="json", RATE_LIMIT_PER_MINUTE="0", **environ
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        command = [
            *(sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"),
            *("--port", str(self.port), "--timeout-graceful-shutdown", "2", "--no-proxy-headers"),
        ]
        log_path = self.log_dir / f"api-{self.starts}.log"
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command, env=self.environ, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO
            )
        try:
            wait_for(f"{self.base_url}/health", timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- API log ---\n{log_path.read_text()[-3000:]}") from None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def api_on_port(tmp_path_factory: pytest.TempPathFactory, redis_db: str) -> Iterator[ApiOnFixedPort]:
    log_dir = tmp_path_factory.mktemp("traffic-api")
    api = ApiOnFixedPort(log_dir, REDIS_DB=redis_db, QUEUE_MAX_SIZE=str(QUEUE_MAX_SIZE))
    api.start()
    try:
        yield api
    finally:
        api.stop()


def test_expected_graph_is_what_the_extractor_makes() -> None:
    extractor = DeterministicExtractor()
    for index in (0, 6, 13, 1234):
        extraction = extractor.extract(episode_content(index))
        entities = {(e.name, e.type) for e in extraction.entities}
        facts = {(f.source, f.name, f.target) for f in extraction.facts}
        assert (entities, facts) == expected_graph([index])


def test_api_restart_mid_run_loses_and_duplicates_nothing(
    api_on_port: ApiOnFixedPort,
    redis_db: str,
    tmp_path: Path,
    settings: Settings,
    running_worker: WorkerLauncher,
) -> None:
    base = api_on_port.base_url
    api_key, project = setup_project(base, settings.memstack_bootstrap_api_key)
    follower = EventFollower(base, api_key, project, backoff=0.1, max_backoff=0.5, max_seconds=120)
    load = EpisodeLoad(
        base, api_key, project, clients=2, pause=0.05, replay_every=3,
        max_seconds=30, episode_timeout=30, max_requests=5000,
    )  # fmt: skip
    with follower, load:
        # No worker yet: the queue fills and the API answers 503 + Retry-After, which the load waits out.
        assert load.wait_accepted(QUEUE_MAX_SIZE, timeout=15), load.stats
        with running_worker(tmp_path / "worker.log", REDIS_DB=redis_db):
            time.sleep(1.0)
            api_on_port.restart()  # drops the event stream and every client connection
            restarted = time.monotonic()
            time.sleep(2.0)
            load.stop()
            report = verify(load, [follower], timeout=60)
            entities, facts = project_graph(settings, project)

    assert report.ok, report.summary()
    assert report.lost == ()
    assert report.duplicated == ()
    assert report.accepted == report.stored == report.completed == report.posted
    records = load.records
    assert report.accepted > QUEUE_MAX_SIZE, report.summary()
    assert any(r.accepted_at and r.accepted_at > restarted for r in records), "no episode after the restart"
    # The same request was resent with the same key through both kinds of refusal, and got in.
    assert any(503 in r.statuses for r in records)
    assert any(r.transport_errors for r in records)
    stats = load.stats
    assert stats.unavailable >= 1, "the full queue should have answered 503"
    assert stats.unavailable_without_retry_after == 0
    assert stats.transport_errors >= 1, "the restart should have refused or dropped some requests"
    assert stats.replays >= 1
    assert all(len(set(r.episode_ids)) == 1 for r in records)

    (seen,) = report.followers
    assert seen.reconnects >= 1, follower.drops
    assert seen.missing_terminal == ()
    assert seen.missing_ids == ()
    assert seen.duplicate_events == 0
    terminal = follower.terminal()
    assert all(terminal.get(r.episode_ids[0]) == "completed" for r in records)
    # Events that happened while the stream was down arrived on a later connection.
    assert max(e.connection for e in follower.events) >= 2

    assert (entities, facts) == expected_graph(r.index for r in records)


def test_verify_reports_what_went_missing(
    api_on_port: ApiOnFixedPort,
    redis_db: str,
    tmp_path: Path,
    settings: Settings,
    running_worker: WorkerLauncher,
) -> None:
    base = api_on_port.base_url
    api_key, project = setup_project(base, settings.memstack_bootstrap_api_key)
    with running_worker(tmp_path / "worker.log", REDIS_DB=redis_db):
        load = EpisodeLoad(base, api_key, project, clients=1, pause=0.0, max_episodes=3, max_seconds=20)
        with load:
            assert load.wait_accepted(3, timeout=15)
        clean = verify(load, timeout=30)
        assert clean.ok, clean.summary()

        victim = load.records[0].episode_ids[0]
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        with http:
            assert http.delete(f"/api/v1/projects/{project}/episodes/{victim}").status_code == 204
            stray = http.post(f"/api/v1/projects/{project}/episodes", json={"content": "Nobody sent Ann."})
            assert stray.status_code == 202, stray.text
        late = EventFollower(base, api_key, project, last_event_id=None, max_seconds=30, name="late")
        with late:
            report = verify(load, [late], timeout=3)

    assert report.lost == (victim,)
    assert report.lost_reasons[victim] == "not listed by the server"
    assert report.unexpected_stored == (stray.json()["id"],)
    assert report.duplicated == ()
    # Started after everything happened, the late follower saw none of the completions.
    (missed,) = report.followers
    assert set(missed.missing_terminal) == {r.episode_ids[0] for r in load.records}
    problems = "\n".join(report.problems())
    assert "1 accepted episodes lost" in problems
    assert "stored episodes nobody accepted" in problems
    assert "late missed 3 terminal events" in problems
    assert not report.ok
