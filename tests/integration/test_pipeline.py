"""Episodes in, knowledge graph out: the real API, worker, PostgreSQL, Redis and Neo4j."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import psycopg
import pytest

from service.settings import Settings
from tests.support.client import Client, graph_counts, graph_query, project_graph
from tests.support.metrics import sample
from tests.support.processes import ApiLauncher, RunningApi, RunningWorker, WorkerLauncher
from tests.support.stack import server_ctl

KNOWN_TEXT = 'Alice Smith works at Acme Corp in Berlin. Yesterday Alice met Bob Jones at the "Quantum Lab".'
KNOWN_ENTITIES = {
    ("Alice Smith", "Name"),
    ("Acme Corp", "Organization"),
    ("Berlin", "Place"),
    ("Alice", "Name"),
    ("Bob Jones", "Name"),
    ("Quantum Lab", "Concept"),
}
KNOWN_FACTS = {
    ("Alice Smith", "WORKS_AT", "Acme Corp"),
    ("Acme Corp", "IN", "Berlin"),
    ("Alice", "MET", "Bob Jones"),
    ("Bob Jones", "AT", "Quantum Lab"),
}


@pytest.fixture(scope="module")
def client(api: RunningApi, settings: Settings) -> Client:
    return Client(api.base_url, settings.memstack_bootstrap_api_key)


def test_known_text_becomes_exactly_the_expected_graph(
    client: Client, worker: RunningWorker, settings: Settings
) -> None:
    project = client.create_project()
    response = client.post_episode(project, KNOWN_TEXT)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    client.wait_all(project, "completed", 1)
    entities, facts = project_graph(settings, project)
    assert entities == KNOWN_ENTITIES
    assert facts == KNOWN_FACTS


def test_sse_client_sees_queued_processing_completed(
    client: Client, worker: RunningWorker, api: RunningApi
) -> None:
    project = client.create_project()
    seen: dict[str, list[str]] = defaultdict(list)
    ids: list[str] = []
    ready = threading.Event()
    headers = {"Authorization": client.http.headers["Authorization"]}

    def listen() -> None:
        with httpx.stream(
            "GET", f"{api.base_url}/api/v1/projects/{project}/events", headers=headers, timeout=60
        ) as stream:
            assert stream.headers["x-accel-buffering"] == "no"
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    seen[event["episode_id"]].append(event["status"])
                if ids and all(seen[i][-1:] == ["completed"] for i in ids):
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    for n in range(5):
        response = client.post_episode(project, f"Episode {n}: Grace Hopper joined Navy Labs.")
        ids.append(response.json()["id"])
    listener.join(60)
    assert not listener.is_alive()
    assert {i: seen[i] for i in ids} == {i: ["queued", "processing", "completed"] for i in ids}


def test_sse_resumes_after_last_event_id_without_loss_or_repeats(
    client: Client, worker: RunningWorker, api: RunningApi
) -> None:
    project = client.create_project()
    for n in range(3):
        client.post_episode(project, f"Run {n}: Ada Lovelace wrote Notes.")
    client.wait_all(project, "completed", 3)
    headers = {"Authorization": client.http.headers["Authorization"], "Last-Event-ID": "0-0"}
    events: list[tuple[str, str]] = []
    with httpx.stream(
        "GET", f"{api.base_url}/api/v1/projects/{project}/events", headers=headers, timeout=30
    ) as s:
        current_id = ""
        for line in s.iter_lines():
            if line.startswith("id:"):
                current_id = line[3:].strip()
            if line.startswith("data:"):
                events.append((current_id, json.loads(line[5:])["status"]))
            if len(events) == 9:
                break
    assert [status for _, status in events].count("completed") == 3
    middle = events[4][0]
    headers["Last-Event-ID"] = middle
    resumed: list[str] = []
    with httpx.stream(
        "GET", f"{api.base_url}/api/v1/projects/{project}/events", headers=headers, timeout=30
    ) as s:
        for line in s.iter_lines():
            if line.startswith("id:"):
                resumed.append(line[3:].strip())
            if len(resumed) == 4:
                break
    assert resumed == [event_id for event_id, _ in events[5:]]


def test_idempotency_key_gives_one_episode(client: Client, worker: RunningWorker) -> None:
    project = client.create_project()
    key = uuid.uuid4().hex
    first = client.post_episode(project, "Heidi visited Oslo.", **{"Idempotency-Key": key})
    second = client.post_episode(project, "Heidi visited Oslo.", **{"Idempotency-Key": key})
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    assert len(client.statuses(project)) == 1


def test_bulk_with_repeated_client_ids(client: Client, worker: RunningWorker) -> None:
    project = client.create_project()
    items = [{"content": f"Item {n} mentions Ivy League.", "client_id": f"c{n % 3}"} for n in range(6)]
    response = client.http.post(f"/api/v1/projects/{project}/episodes/bulk", json={"episodes": items})
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(body["accepted"]) == 3
    assert sorted(e["client_id"] for e in body["duplicates"]) == ["c0", "c1", "c2"]
    again = client.http.post(f"/api/v1/projects/{project}/episodes/bulk", json={"episodes": items[:2]}).json()
    assert again["accepted"] == []
    assert len(again["duplicates"]) == 2
    client.wait_all(project, "completed", 3)


def test_same_text_in_two_projects_gives_two_graphs(
    client: Client, worker: RunningWorker, settings: Settings
) -> None:
    first, second = client.create_project(), client.create_project()
    for project in (first, second):
        client.post_episode(project, KNOWN_TEXT)
    for project in (first, second):
        client.wait_all(project, "completed", 1)
        assert project_graph(settings, project) == (KNOWN_ENTITIES, KNOWN_FACTS)
        assert graph_counts(settings, project) == {"entities": 6, "episodes": 1, "facts": 4, "mentions": 6}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": "ok", "reference_time": "yesterday"}, "reference_time"),
        ({"content": "ok", "reference_time": "2026-01-01T10:00:00"}, "reference_time"),
        ({"content": "ok", "colour": "blue"}, "colour"),
        ({"content": "ok", "source": "fax"}, "source"),
        ({"content": "nul\x00inside"}, "content"),
        ({"content": "ok", "metadata": {"note": "nul\x00inside"}}, "metadata"),
    ],
)
def test_bad_episodes_are_422_naming_the_field(client: Client, body: dict[str, object], field: str) -> None:
    project = client.create_project()
    response = client.http.post(f"/api/v1/projects/{project}/episodes", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Unprocessable Entity"
    assert problem["status"] == 422
    assert field in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == [field]
    assert client.statuses(project) == {}


def test_another_tenant_gets_404_everywhere(client: Client, api: RunningApi) -> None:
    project = client.create_project()
    episode = client.post_episode(project, "Judy met Ken.").json()["id"]
    tenant = client.http.post("/api/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:8]}"}).json()
    created = client.http.post("/api/v1/keys", json={"name": "other", "tenant_id": tenant["id"]})
    assert created.status_code == 201, created.text
    other = Client(api.base_url, created.json()["key"])
    base = f"/api/v1/projects/{project}"
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/episodes"),
        ("GET", f"{base}/episodes/{episode}"),
        ("GET", f"{base}/events"),
        ("POST", f"{base}/episodes"),
    ]:
        response = other.http.request(method, path, json={"content": "x"} if method == "POST" else None)
        assert response.status_code == 404, (method, path, response.text)
    assert project not in {p["id"] for p in other.http.get("/api/v1/projects").json()["items"]}
    assert other.http.get("/api/v1/tenants").status_code == 403
    anonymous = httpx.get(f"{api.base_url}{base}")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_revoked_key_stops_working(client: Client, api: RunningApi) -> None:
    created = client.http.post("/api/v1/keys", json={"name": "short-lived"}).json()
    temporary = Client(api.base_url, created["key"])
    assert temporary.http.get("/api/v1/projects").status_code == 200
    assert client.http.delete(f"/api/v1/keys/{created['api_key']['id']}").status_code == 204
    assert temporary.http.get("/api/v1/projects").status_code == 401
    listed = {k["id"]: k for k in client.http.get("/api/v1/keys").json()}
    assert listed[created["api_key"]["id"]]["revoked_at"] is not None
    assert "key" not in listed[created["api_key"]["id"]]


def test_neo4j_outage_retries_and_loses_nothing(
    settings: Settings, tmp_path: Path, running_api: ApiLauncher, running_worker: WorkerLauncher
) -> None:
    # A Redis database of its own, so that no other worker takes these jobs.
    with (
        running_api(tmp_path / "api.log", REDIS_DB="9") as api,
        running_worker(tmp_path / "worker.log", REDIS_DB="9") as worker,
    ):
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        texts = [f"Batch {n}: Mallory Stone called Trent Reid." for n in range(5)]
        server_ctl("neo4j", "stop")
        try:
            ids = [client.post_episode(project, text).json()["id"] for text in texts]
            # Well past the driver's own transaction retries (15 s), so whole jobs fail and retry.
            time.sleep(40)
            assert set(client.statuses(project).values()) <= {"queued", "processing"}
        finally:
            server_ctl("neo4j", "start")
        statuses = client.wait_all(project, "completed", 5, timeout=180)
        attempts = [
            client.http.get(f"/api/v1/projects/{project}/episodes/{i}").json()["attempts"] for i in ids
        ]
        retried = sample(
            httpx.get(worker.metrics_url).text,
            "memstack_jobs_total",
            task="ingest_episodes",
            status="retried",
        )
    assert set(statuses) == set(ids)
    assert graph_counts(settings, project) == {"entities": 2, "episodes": 5, "facts": 1, "mentions": 10}
    assert retried >= 1
    assert max(attempts) >= 2


def test_episode_posted_while_its_project_is_deleted_gets_404(client: Client, settings: Settings) -> None:
    project = client.create_project()
    result: list[httpx.Response] = []
    with psycopg.connect(settings.postgres_conninfo) as conn:
        # Hold the project row as a project DELETE does, so the insert waits on it.
        conn.execute("SELECT id FROM projects WHERE id = %s FOR UPDATE", (project,))
        poster = threading.Thread(
            target=lambda: result.append(client.post_episode(project, "Wendy met Xavier."))
        )
        poster.start()
        time.sleep(1.0)
        assert poster.is_alive()  # blocked behind the lock
        conn.execute("DELETE FROM projects WHERE id = %s", (project,))
        conn.commit()
    poster.join(30)
    assert result[0].status_code == 404, result[0].text
    assert result[0].headers["content-type"] == "application/problem+json"


def test_every_mention_carries_its_project(client: Client, worker: RunningWorker, settings: Settings) -> None:
    project = client.create_project()
    client.post_episode(project, KNOWN_TEXT)
    client.wait_all(project, "completed", 1)
    rows = graph_query(
        settings, "MATCH ()-[m:MENTIONS]->(:Entity {project_id: $p}) RETURN m.project_id AS p", p=project
    )
    assert [row["p"] for row in rows] == [project] * len(KNOWN_ENTITIES)
