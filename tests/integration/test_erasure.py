"""Deleting episodes and erasing projects, checked directly in PostgreSQL, Neo4j and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import AsyncGraphDatabase, GraphDatabase
from psycopg_pool import ConnectionPool

from service.memory.extractor import DeterministicExtractor
from service.memory.ingest import IngestDeps, ingest_batch
from service.memory.llm_extractor import CACHE_PREFIX
from service.settings import Settings
from service.stores import erasure as store_erasure
from service.stores.erasure import Deleted, erase_project_graph
from service.stores.events import stream_key
from service.stores.graph_writes import GraphBatch, write_batch
from service.stores.redis import create_sync_redis
from tests.support.client import Client, graph_counts, graph_query
from tests.support.processes import ApiLauncher, RunningApi, RunningWorker
from tests.support.stack import free_port

SHARED = "Alice Smith works at Acme Corp in Berlin."
OTHER = "Alice Smith works at Acme Corp. Dave Brown visits Rome."


@pytest.fixture(scope="module")
def client(api: RunningApi, settings: Settings) -> Client:
    return Client(api.base_url, settings.memstack_bootstrap_api_key)


def sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def post(client: Client, project: str, text: str) -> str:
    response = client.post_episode(project, text)
    assert response.status_code == 202, response.text
    episode_id: str = response.json()["id"]
    return episode_id


def facts(settings: Settings, project: str) -> dict[str, list[str]]:
    """Each fact's supporting episodes (their STATES relationships), checked against its count."""
    rows = graph_query(
        settings,
        "MATCH ()-[r:RELATES_TO {project_id: $p}]->()"
        " CALL (r) { MATCH (ep:Episode)-[:STATES {fact: r.uid}]->() RETURN collect(ep.id) AS episodes }"
        " RETURN r.name AS name, r.support AS support, episodes",
        p=project,
    )
    assert all(row["support"] == len(row["episodes"]) for row in rows), rows
    return {row["name"]: sorted(row["episodes"]) for row in rows}


def entities(settings: Settings, project: str) -> set[str]:
    rows = graph_query(settings, "MATCH (e:Entity {project_id: $p}) RETURN e.name AS name", p=project)
    return {row["name"] for row in rows}


def everything_of(settings: Settings, project: str) -> dict[str, int]:
    """What any store still holds of the project."""
    nodes = graph_query(settings, "MATCH (n) WHERE n.project_id = $p RETURN count(n) AS n", p=project)
    rels = graph_query(settings, "MATCH ()-[r]->() WHERE r.project_id = $p RETURN count(r) AS n", p=project)
    redis = create_sync_redis(settings)
    try:
        keys = list(redis.scan_iter(match=f"*{project}*", count=1000))
    finally:
        redis.close()
    return {
        "episode_rows": sql(settings, "SELECT count(*) FROM episodes WHERE project_id = %s", project)[0][0],
        "project_rows": sql(settings, "SELECT count(*) FROM projects WHERE id = %s", project)[0][0],
        "nodes": nodes[0]["n"],
        "relationships": rels[0]["n"],
        "redis_keys": len(keys),
    }


def test_deleting_an_episode_keeps_what_other_episodes_support(
    client: Client, worker: RunningWorker, settings: Settings
) -> None:
    project = client.create_project()
    first, second = post(client, project, SHARED), post(client, project, OTHER)
    client.wait_all(project, "completed", 2)
    assert facts(settings, project) == {
        "WORKS_AT": sorted([first, second]),
        "IN": [first],
        "VISITS": [second],
    }

    response = client.http.delete(f"/api/v1/projects/{project}/episodes/{first}")
    assert response.status_code == 204, response.text
    assert facts(settings, project) == {"WORKS_AT": [second], "VISITS": [second]}
    assert entities(settings, project) == {"Alice Smith", "Acme Corp", "Dave Brown", "Rome"}
    assert graph_counts(settings, project)["episodes"] == 1
    assert sql(settings, "SELECT count(*) FROM episodes WHERE id = %s", first) == [(0,)]
    assert client.http.get(f"/api/v1/projects/{project}/episodes/{first}").status_code == 404
    assert client.http.delete(f"/api/v1/projects/{project}/episodes/{first}").status_code == 404

    assert client.http.delete(f"/api/v1/projects/{project}/episodes/{second}").status_code == 204
    assert graph_counts(settings, project) == {"entities": 0, "episodes": 0, "facts": 0, "mentions": 0}


def test_an_episode_a_worker_is_processing_is_not_deleted_under_it(
    client: Client, settings: Settings
) -> None:
    project = client.create_project()
    episode = uuid.uuid4()
    sql(
        settings,
        "INSERT INTO episodes (id, project_id, content, status) VALUES (%s, %s, 'x', 'processing')",
        episode,
        project,
    )
    for url in (f"/api/v1/projects/{project}/episodes/{episode}", f"/api/v1/projects/{project}"):
        response = client.http.delete(url)
        assert response.status_code == 409, response.text
        assert int(response.headers["retry-after"]) > 0
    assert sql(settings, "SELECT count(*) FROM episodes WHERE id = %s", episode) == [(1,)]
    # Claimed longer ago than the job timeout: its worker is gone (or done), so deleting is safe.
    sql(settings, "UPDATE episodes SET updated_at = now() - interval '1 day' WHERE id = %s", episode)
    assert client.http.delete(f"/api/v1/projects/{project}/episodes/{episode}").status_code == 204


def test_deleting_a_project_erases_it_everywhere(
    client: Client, worker: RunningWorker, settings: Settings
) -> None:
    project, bystander = client.create_project(), client.create_project()
    texts = [SHARED, OTHER, 'Carol met Dave Brown at the "Quantum Lab".']
    for target in (project, bystander):
        response = client.http.post(
            f"/api/v1/projects/{target}/episodes/bulk", json={"episodes": [{"content": t} for t in texts]}
        )
        assert response.status_code == 202, response.text
        client.wait_all(target, "completed", len(texts))
    jobs = [
        row[0] for row in sql(settings, "SELECT DISTINCT job_id FROM episodes WHERE project_id = %s", project)
    ]
    redis = create_sync_redis(settings)
    try:
        for target in (project, bystander):
            redis.set(f"{CACHE_PREFIX}{target}:deadbeef", b"{}")
        assert redis.exists(stream_key(project)) == 1
        before = everything_of(settings, project)
        assert all(before.values()), before

        response = client.http.delete(f"/api/v1/projects/{project}")
        assert response.status_code == 204, response.text
        assert everything_of(settings, project) == dict.fromkeys(before, 0)
        assert redis.exists(*(f"rq:job:{job}" for job in jobs)) == 0  # finished or still queued
        # The other project is untouched.
        assert all(everything_of(settings, bystander).values())
        assert redis.exists(f"{CACHE_PREFIX}{bystander}:deadbeef") == 1
    finally:
        redis.close()
    assert client.http.delete(f"/api/v1/projects/{project}").status_code == 404
    assert client.http.get(f"/api/v1/projects/{project}").status_code == 404


def test_an_interrupted_erasure_can_be_repeated(
    client: Client, worker: RunningWorker, settings: Settings
) -> None:
    project = client.create_project()
    post(client, project, 'Alice Smith met Bob Jones in Berlin. Carol met Dave Brown at the "Quantum Lab".')
    client.wait_all(project, "completed", 1)
    # A crash after some graph batches: part of the graph is gone, the rows are still there.
    graph_query(settings, "MATCH (n:Entity {project_id: $p}) WITH n LIMIT 2 DETACH DELETE n", p=project)
    assert client.http.delete(f"/api/v1/projects/{project}").status_code == 204
    assert not any(everything_of(settings, project).values())


def test_graph_erasure_works_in_batches(client: Client, worker: RunningWorker, settings: Settings) -> None:
    project = client.create_project()
    post(client, project, "Alice Smith met Bob Jones in Berlin. Carol White met Dave Brown in Rome.")
    client.wait_all(project, "completed", 1)
    counts = graph_counts(settings, project)

    async def erase() -> int:
        driver = AsyncGraphDatabase.driver(
            settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)
        )
        try:
            return await erase_project_graph(driver, settings.neo4j_database, project, batch_size=2)
        finally:
            await driver.close()

    assert asyncio.run(erase()) == counts["entities"] + counts["episodes"]
    assert graph_counts(settings, project) == {"entities": 0, "episodes": 0, "facts": 0, "mentions": 0}


HUBS = ("hub a", "hub b", "hub c")


def seed_hubs(settings: Settings, project: str, episode: str, facts: int) -> None:
    """One episode mentioning three entities and stating `facts` facts between them: a few nodes
    with thousands of relationships (RELATES_TO, and the episode's STATES), written directly."""
    batch = GraphBatch()
    batch.add_episode(episode, project, "test", None)
    for key in HUBS:
        batch.add_mention(episode, project, key, key.title(), "Thing", "a hub")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(facts):
        source, target = HUBS[n % 3], HUBS[(n + 1) % 3]
        batch.add_fact(episode, project, (source, f"REL_{n}", target), f"fact {n}", now)
    with GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)) as d:
        write_batch(d, settings.neo4j_database, batch)


def test_graph_erasure_batches_by_relationships_not_nodes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every node here has hundreds of relationships: deleting a node with them in one
    transaction (as a batch of nodes did) would hold all of them at once, past any bound."""
    project, episode, facts_count, bound = str(uuid.uuid4()), str(uuid.uuid4()), 1500, 100
    seed_hubs(settings, project, episode, facts_count)
    assert graph_counts(settings, project) == {
        "entities": 3,
        "episodes": 1,
        "facts": facts_count,
        "mentions": 3,
    }
    batches: list[Deleted] = []
    real_batch = store_erasure._erase_batch

    async def spy(*args: Any) -> Deleted:
        deleted = await real_batch(*args)
        batches.append(deleted)  # as Neo4j counted what the transaction deleted
        return deleted

    monkeypatch.setattr(store_erasure, "_erase_batch", spy)

    async def erase() -> int:
        driver = AsyncGraphDatabase.driver(
            settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)
        )
        try:
            return await erase_project_graph(driver, settings.neo4j_database, project, batch_size=bound)
        finally:
            await driver.close()

    assert asyncio.run(erase()) == 4  # the entities and the episode
    # RELATES_TO, STATES (one per fact) and MENTIONS; not one transaction held more than the bound.
    assert sum(b.relationships for b in batches) == 2 * facts_count + 3
    assert max(b.relationships for b in batches) <= bound
    assert max(b.nodes for b in batches) <= bound
    assert len(batches) > (2 * facts_count) // bound
    assert not any(everything_of(settings, project).values())


def test_deleting_a_project_of_hubs_erases_all_of_it(client: Client, settings: Settings) -> None:
    """More relationships on one node than a graph batch holds: the API's erasure still completes."""
    project, episode = client.create_project(), uuid.uuid4()
    sql(
        settings,
        "INSERT INTO episodes (id, project_id, content, status) VALUES (%s, %s, 'x', 'completed')",
        episode,
        project,
    )
    facts_count = store_erasure.GRAPH_BATCH + 500
    seed_hubs(settings, project, str(episode), facts_count)
    assert graph_counts(settings, project)["facts"] == facts_count
    response = client.http.delete(f"/api/v1/projects/{project}")
    assert response.status_code == 204, response.text
    assert not any(everything_of(settings, project).values())


def test_a_job_for_an_erased_project_writes_nothing(client: Client, settings: Settings) -> None:
    """An in-flight job whose episodes were erased claims no rows, so it writes no graph."""
    project = client.create_project()
    ids = [uuid.uuid4() for _ in range(3)]
    for episode in ids:  # queued rows whose job has not run yet
        sql(
            settings,
            "INSERT INTO episodes (id, project_id, content) VALUES (%s, %s, %s)",
            episode,
            project,
            "Alice Smith works at Acme Corp.",
        )
    assert client.http.delete(f"/api/v1/projects/{project}").status_code == 204

    pool = ConnectionPool(
        settings.postgres_conninfo, min_size=1, max_size=1, open=True, kwargs={"autocommit": True}
    )
    graph = GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    redis = create_sync_redis(settings)
    try:
        deps = IngestDeps(pool, graph, settings.neo4j_database, redis, DeterministicExtractor())
        outcome = ingest_batch(deps, ids, final_attempt=True)
    finally:
        pool.close()
        graph.close()
        redis.close()
    assert (outcome.skipped, outcome.completed, outcome.failed) == (3, [], {})
    assert not any(everything_of(settings, project).values())


def test_a_neo4j_outage_is_a_503_that_commits_nothing(
    client: Client, settings: Settings, tmp_path: Path, running_api: ApiLauncher
) -> None:
    project = client.create_project()
    episode = uuid.uuid4()
    sql(
        settings,
        "INSERT INTO episodes (id, project_id, content, status) VALUES (%s, %s, 'x', 'completed')",
        episode,
        project,
    )
    nowhere = f"bolt://127.0.0.1:{free_port()}"  # nothing listens there
    with running_api(tmp_path / "api.log", NEO4J_URI=nowhere) as broken:
        outage = Client(broken.base_url, settings.memstack_bootstrap_api_key)
        base = f"/api/v1/projects/{project}"
        calls = [
            ("POST", f"{base}/search", {"query": "Alice"}),
            ("GET", f"{base}/graph", None),
            ("DELETE", f"{base}/episodes/{episode}", None),
            ("DELETE", base, None),
        ]
        for method, url, body in calls:
            started = time.monotonic()
            response = outage.http.request(method, url, json=body)
            assert response.status_code == 503, (method, url, response.text)
            assert int(response.headers["retry-after"]) > 0
            assert time.monotonic() - started < 15
        assert "unhandled error" not in broken.log()
    assert sql(settings, "SELECT count(*) FROM episodes WHERE id = %s", episode) == [(1,)]
    assert client.http.get(f"/api/v1/projects/{project}").status_code == 200
    assert client.http.delete(f"/api/v1/projects/{project}").status_code == 204
