"""The worker under stress: a full queue, SIGTERM mid-job, SIGKILL mid-job, its own metrics.

Each test uses a Redis database of its own, so its queue is not drained by other workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from service.settings import Settings
from tests.support.client import Client, graph_counts
from tests.support.metrics import sample
from tests.support.processes import ApiLauncher, RunningApi, WorkerLauncher
from tests.support.stack import REPO, free_port, local_environ


def texts(count: int, tag: str) -> list[str]:
    return [
        f"{tag} {n}: Person{n % 97} Smith met Agent{n % 13} Brown at Site{n % 7} Labs." for n in range(count)
    ]


def processing_count(conn: psycopg.Connection, project_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM episodes WHERE project_id = %s AND status = 'processing'", (project_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def post_bulk(client: Client, project: str, contents: list[str], batch: int = 500) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(contents), batch):
        items = [{"content": c} for c in contents[start : start + batch]]
        response = client.http.post(f"/api/v1/projects/{project}/episodes/bulk", json={"episodes": items})
        assert response.status_code == 202, response.text
        ids += [e["id"] for e in response.json()["accepted"]]
    return ids


@pytest.mark.parametrize("isolated_db", [3], indirect=True)
def test_full_queue_answers_503_with_retry_after(
    isolated_db: str, tmp_path: Path, settings: Settings, running_api: ApiLauncher
) -> None:
    with running_api(tmp_path / "api.log", REDIS_DB=isolated_db, QUEUE_MAX_SIZE="2") as api:
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        assert client.post_episode(project, "Olga met Pete.").status_code == 202
        assert client.post_episode(project, "Quinn met Rita.").status_code == 202
        refused = client.post_episode(project, "Sam met Tess.")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/problem+json"
        assert "queue is full" in refused.json()["detail"]
        assert len(client.statuses(project)) == 2  # nothing accepted that could not be held
        metrics = httpx.get(api.metrics_url).text
        assert sample(metrics, "memstack_episodes_rejected_total", reason="queue_full") == 1
        assert sample(metrics, "http_requests_total", method="POST", status="503") == 1


@pytest.mark.parametrize("isolated_db", [4], indirect=True)
def test_sigkill_mid_job_loses_and_duplicates_nothing(
    isolated_db: str,
    tmp_path: Path,
    settings: Settings,
    running_api: ApiLauncher,
    running_worker: WorkerLauncher,
) -> None:
    with running_api(tmp_path / "api.log", REDIS_DB=isolated_db) as api:
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        reference, victim = client.create_project(), client.create_project()
        with running_worker(tmp_path / "worker.log", REDIS_DB=isolated_db):
            post_bulk(client, reference, texts(1500, "Ref"))
            client.wait_all(reference, "completed", 1500, timeout=180)
        expected = graph_counts(settings, reference)

        ids = post_bulk(client, victim, texts(1500, "Ref"))
        environ = local_environ(REDIS_DB=isolated_db, LOG_FORMAT="text", METRICS_PORT=str(free_port()))
        with (tmp_path / "victim.log").open("ab") as log:
            victim_worker = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while processing_count(conn, victim) == 0:
                assert victim_worker.poll() is None, (tmp_path / "victim.log").read_text()
                assert time.monotonic() < deadline, "the worker never started a job"
                time.sleep(0.005)
            os.killpg(victim_worker.pid, signal.SIGKILL)  # like a node failure: the whole pod at once
            victim_worker.wait(10)
            time.sleep(1)
            interrupted = processing_count(conn, victim)
        assert interrupted > 0, "the kill came after the job had finished"

        with running_worker(tmp_path / "worker2.log", REDIS_DB=isolated_db):
            statuses = client.wait_all(victim, "completed", len(ids), timeout=300)
        assert set(statuses) == set(ids)
        with psycopg.connect(settings.postgres_conninfo) as conn:
            rows = conn.execute(
                "SELECT status, count(*), max(attempts) FROM episodes WHERE project_id = %s GROUP BY status",
                (victim,),
            ).fetchall()
        assert [(status, count) for status, count, _ in rows] == [("completed", len(ids))]
        assert rows[0][2] == 2  # the interrupted episodes were taken up again, once
        assert graph_counts(settings, victim) == expected


@pytest.mark.parametrize("isolated_db", [5], indirect=True)
def test_sigterm_finishes_the_job_in_hand(
    isolated_db: str,
    tmp_path: Path,
    settings: Settings,
    running_api: ApiLauncher,
    running_worker: WorkerLauncher,
) -> None:
    with running_api(tmp_path / "api.log", REDIS_DB=isolated_db) as api:
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        ids = post_bulk(client, project, texts(3000, "Term"), batch=1000)
        with running_worker(tmp_path / "worker.log", REDIS_DB=isolated_db) as worker:
            deadline = time.monotonic() + 60
            while "processing" not in client.statuses(project).values():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=120) == 0
            assert "warm shut down requested" in worker.log()
        statuses = client.statuses(project)
        assert "processing" not in statuses.values()  # the job in hand was finished, not abandoned
        assert list(statuses.values()).count("completed") >= 1000
        with running_worker(tmp_path / "worker2.log", REDIS_DB=isolated_db):
            client.wait_all(project, "completed", len(ids), timeout=180)


@pytest.mark.parametrize("isolated_db", [6], indirect=True)
def test_worker_metrics_and_heartbeat(
    isolated_db: str,
    tmp_path: Path,
    settings: Settings,
    api: RunningApi,
    running_api: ApiLauncher,
    running_worker: WorkerLauncher,
) -> None:
    with running_api(tmp_path / "api.log", REDIS_DB=isolated_db) as own_api:
        client = Client(own_api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        post_bulk(client, project, texts(20, "Metric"), batch=10)
        # A heartbeat file of its own: other workers on this machine write the default one.
        heartbeat = {"WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.heartbeat")}
        with running_worker(tmp_path / "worker.log", REDIS_DB=isolated_db, **heartbeat) as worker:
            client.wait_all(project, "completed", 20)
            text = httpx.get(worker.metrics_url).text
            # Two jobs of 10 were waiting: the first absorbed the second (one pass, one job run).
            assert sample(text, "memstack_jobs_total", task="ingest_episodes", status="succeeded") == 1
            assert sample(text, "memstack_job_duration_seconds_count", task="ingest_episodes") == 1
            assert sample(text, "memstack_queue_size", queue="memstack:ingest") == 0
            assert sample(text, "memstack_queue_max_size", queue="memstack:ingest") == settings.queue_max_size
            assert sample(text, "memstack_worker_busy") == 0
            assert time.time() - sample(text, "memstack_worker_last_heartbeat_timestamp_seconds") < 30
            probe = subprocess.run(
                [sys.executable, "-m", "service.cli", "healthcheck", "--max-age", "30"],
                capture_output=True,
                text=True,
                check=False,
                cwd=REPO,
                env=local_environ(**heartbeat),
            )
            assert probe.returncode == 0, probe.stderr
        stale = subprocess.run(
            [sys.executable, "-m", "service.cli", "healthcheck", "--max-age", "30"],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env=local_environ(**heartbeat),
        )
        assert stale.returncode == 1  # the heartbeat file is removed on a clean stop


@pytest.mark.parametrize("isolated_db", [13], indirect=True)
def test_worker_writes_the_heartbeat_where_the_setting_says(
    isolated_db: str, tmp_path: Path, running_worker: WorkerLauncher
) -> None:
    # The chart sets WORKER_HEARTBEAT_FILE from worker.heartbeatFile; the worker's probes run
    # `memstack healthcheck` in the same environment, so both ends follow the one setting.
    heartbeat = tmp_path / "beats" / "worker.alive"  # a directory the worker creates
    environ = local_environ(WORKER_HEARTBEAT_FILE=str(heartbeat), REDIS_DB=isolated_db)

    def probe(**overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "healthcheck", "--max-age", "30"],
            env={**environ, **overrides},
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )

    with running_worker(tmp_path / "worker.log", WORKER_HEARTBEAT_FILE=str(heartbeat), REDIS_DB=isolated_db):
        deadline = time.monotonic() + 15
        while not heartbeat.exists():
            assert time.monotonic() < deadline, f"no heartbeat at {heartbeat}"
            time.sleep(0.1)
        assert time.time() - heartbeat.stat().st_mtime < 30
        healthy = probe()
        assert healthy.returncode == 0, healthy.stderr
        elsewhere = probe(WORKER_HEARTBEAT_FILE=str(tmp_path / "elsewhere"))
        assert elsewhere.returncode == 1
        assert f"no heartbeat at {tmp_path / 'elsewhere'}" in elsewhere.stderr
    assert not heartbeat.exists()  # removed on a clean stop
    assert probe().returncode == 1
