"""A fact's supporting episodes (STATES + support count), the backfill of the old `episodes`
lists, degrees and totals, and bounded reads around a hub: against the real Neo4j."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from neo4j import AsyncDriver, Driver, GraphDatabase

from service.settings import Settings
from service.stores.erasure import delete_episode_graph, erase_project_graph
from service.stores.graph import backfill_graph, create_driver, entity_uid
from service.stores.graph_reads import GraphReader
from service.stores.graph_writes import GraphBatch, fact_uid, write_batch
from tests.support.client import graph_query

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RELATION = ("alice smith", "WORKS_AT", "acme corp")


@pytest.fixture
def project(settings: Settings) -> Iterator[str]:
    project_id = str(uuid.uuid4())
    yield project_id
    asyncio.run(_erase(settings, project_id))


@pytest.fixture(scope="module")
def driver(settings: Settings) -> Iterator[Driver]:
    with GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)) as d:
        yield d


async def _erase(settings: Settings, project_id: str) -> None:
    adriver = create_driver(settings)
    try:
        await erase_project_graph(adriver, settings.neo4j_database, project_id)
    finally:
        await adriver.close()


def _async(settings: Settings, work: Any) -> Any:
    async def run() -> Any:
        adriver: AsyncDriver = create_driver(settings)
        try:
            return await work(adriver)
        finally:
            await adriver.close()

    return asyncio.run(run())


def state(driver: Driver, settings: Settings, project: str, episodes: list[str]) -> None:
    """Each episode mentions Alice and Acme and states that she works there."""
    batch = GraphBatch()
    for episode in episodes:
        batch.add_episode(episode, project, "test", NOW)
        batch.add_mention(episode, project, RELATION[0], "Alice Smith", "Person", "a person")
        batch.add_mention(episode, project, RELATION[2], "Acme Corp", "Organization", "a company")
        batch.add_fact(episode, project, RELATION, "Alice Smith works at Acme Corp", NOW)
    write_batch(driver, settings.neo4j_database, batch)


def support(settings: Settings, project: str) -> tuple[int, list[str]] | None:
    """The fact's support count and the episodes whose STATES point at it; None when it is gone."""
    rows = graph_query(
        settings,
        "MATCH ()-[r:RELATES_TO {uid: $uid}]->() WHERE r.project_id = $p"
        " CALL (r) { MATCH (ep:Episode)-[:STATES {fact: r.uid}]->() RETURN collect(ep.id) AS episodes }"
        " RETURN r.support AS support, r.episodes AS legacy, episodes",
        uid=fact_uid(project, *RELATION),
        p=project,
    )
    if not rows:
        return None
    assert rows[0]["legacy"] is None
    return int(rows[0]["support"]), sorted(rows[0]["episodes"])


def totals(settings: Settings, project: str) -> dict[str, int]:
    rows = graph_query(
        settings,
        "MATCH (t:GraphTotals {project_id: $p}) RETURN sum(t.entities) AS entities, sum(t.facts) AS facts",
        p=project,
    )
    return {"entities": int(rows[0]["entities"] or 0), "facts": int(rows[0]["facts"] or 0)}


def degrees(settings: Settings, project: str) -> dict[str, tuple[int, int]]:
    """Each entity's maintained degree next to its real one."""
    rows = graph_query(
        settings,
        "MATCH (e:Entity {project_id: $p}) RETURN e.key AS key, e.degree AS degree,"
        " COUNT { (e)-[:RELATES_TO]-() } AS real",
        p=project,
    )
    return {row["key"]: (row["degree"], row["real"]) for row in rows}


def test_a_fact_keeps_its_other_sources_until_the_last_is_erased(
    driver: Driver, settings: Settings, project: str
) -> None:
    episodes = sorted(str(uuid.uuid4()) for _ in range(5))
    state(driver, settings, project, episodes[:3])
    state(driver, settings, project, episodes[3:])
    state(driver, settings, project, episodes[1:3])  # a repeated write counts nothing twice
    assert support(settings, project) == (5, episodes)
    assert totals(settings, project) == {"entities": 2, "facts": 1}
    assert all(d == r == 1 for d, r in degrees(settings, project).values())

    for i, episode in enumerate(episodes):
        _async(settings, lambda d, e=episode: delete_episode_graph(d, settings.neo4j_database, project, e))
        left = episodes[i + 1 :]
        if left:
            assert support(settings, project) == (len(left), left)
            assert totals(settings, project) == {"entities": 2, "facts": 1}
        else:
            assert support(settings, project) is None
            assert totals(settings, project) == {"entities": 0, "facts": 0}
    assert (
        graph_query(settings, "MATCH (n {project_id: $p}) WHERE NOT n:GraphTotals RETURN n", p=project) == []
    )


def test_the_backfill_turns_episode_lists_into_states_once(
    driver: Driver, settings: Settings, project: str
) -> None:
    """Data as the previous release wrote it: facts with `episodes` lists, entities without degree."""
    episodes = sorted(str(uuid.uuid4()) for _ in range(3))
    a, b, c = (entity_uid(project, k) for k in ("alice smith", "acme corp", "berlin"))
    graph_query(
        settings,
        "UNWIND $episodes AS id CREATE (:Episode {id: id, project_id: $p})"
        " WITH count(*) AS _"
        " CREATE (a:Entity {uid: $a, project_id: $p, key: 'alice smith', name: 'Alice Smith', type: 'Person',"
        "   summary: ''}),"
        "  (b:Entity {uid: $b, project_id: $p, key: 'acme corp', name: 'Acme Corp', type: 'Organization',"
        "   summary: ''}),"
        "  (c:Entity {uid: $c, project_id: $p, key: 'berlin', name: 'Berlin', type: 'Place', summary: ''}),"
        "  (a)-[:RELATES_TO {uid: $works, project_id: $p, name: 'WORKS_AT', fact: 'x',"
        "    episodes: $episodes}]->(b),"
        "  (b)-[:RELATES_TO {uid: $located, project_id: $p, name: 'IN', fact: 'y',"
        "    episodes: [$episodes[0], 'gone-episode']}]->(c)",
        episodes=episodes,
        p=project,
        a=a,
        b=b,
        c=c,
        works=fact_uid(project, *RELATION),
        located=fact_uid(project, "acme corp", "IN", "berlin"),
    )
    for _ in range(2):  # idempotent: the second run finds nothing to do
        _async(settings, lambda d: backfill_graph(d, settings.neo4j_database))
        assert support(settings, project) == (3, episodes)
        assert totals(settings, project) == {"entities": 3, "facts": 2}
        assert degrees(settings, project) == {"alice smith": (1, 1), "acme corp": (2, 2), "berlin": (1, 1)}

    # New writes and erasure carry on from the backfilled state.
    newer = str(uuid.uuid4())
    state(driver, settings, project, [newer])
    assert support(settings, project) == (4, sorted([*episodes, newer]))
    assert totals(settings, project) == {"entities": 3, "facts": 2}
    for episode in episodes:
        _async(settings, lambda d, e=episode: delete_episode_graph(d, settings.neo4j_database, project, e))
    assert support(settings, project) == (1, [newer])
    # The IN fact's only deletable supporter is gone ('gone-episode' had no Episode node).
    assert (
        graph_query(settings, "MATCH ()-[r:RELATES_TO {name: 'IN', project_id: $p}]->() RETURN r", p=project)
        == []
    )


def test_reads_around_a_hub_are_bounded(driver: Driver, settings: Settings, project: str) -> None:
    """A hub with 1,500 facts, each spoke with two more: every read stops at its limits."""
    batch = GraphBatch()
    episode = str(uuid.uuid4())
    batch.add_episode(episode, project, "test", NOW)
    batch.add_mention(episode, project, "hub", "Hub", "Place", "the hub")
    for i in range(1500):
        batch.add_mention(episode, project, f"spoke {i}", f"Spoke {i}", "Person", "a spoke")
        batch.add_fact(episode, project, (f"spoke {i}", "VISITED", "hub"), f"Spoke {i} visited Hub", NOW)
        for j in range(2):
            batch.add_mention(episode, project, f"leaf {i} {j}", f"Leaf {i} {j}", "Person", "a leaf")
            batch.add_fact(episode, project, (f"spoke {i}", "KNOWS", f"leaf {i} {j}"), f"knows {j}", NOW)
    write_batch(driver, settings.neo4j_database, batch)
    assert totals(settings, project) == {"entities": 4501, "facts": 4500}
    assert degrees(settings, project)["hub"] == (1500, 1500)

    async def read(d: AsyncDriver) -> tuple[Any, ...]:
        reader = GraphReader(d, settings.neo4j_database)
        return (
            await reader.entity(project, "hub", 2, 50, 200, 100),
            await reader.entity(project, "hub", 1, 200, 800, 100),
            await reader.export(project, 10, 50),
            await reader.search_candidates(project, "hub", 30, seeds=1, per_seed=20),
        )

    deep, wide, export, around = _async(settings, read)
    assert len(deep["neighbours"]) == 50
    assert deep["truncated"]
    assert len(deep["facts"]) <= 200
    members = {deep["entity"]["uid"]} | {n["uid"] for n in deep["neighbours"]}
    assert all(f["source"] in members and f["target"] in members for f in deep["facts"])
    assert {n["distance"] for n in deep["neighbours"]} == {1}  # ring 1 alone fills the limit
    assert len(wide["neighbours"]) == 200
    assert wide["truncated"]
    assert len(wide["facts"]) == 200
    assert deep["episodes"] == [episode]

    assert next(n["key"] for n in export["nodes"]) == "hub"
    assert len(export["nodes"]) == 10
    assert export["truncated"]
    assert len(export["edges"]) == 9  # each of the 9 spokes visited the hub
    assert (export["total_nodes"], export["total_edges"]) == (4501, 4500)
    assert [n["degree"] for n in export["nodes"]] == [1500] + [3] * 9
    assert [hit["key"] for hit in around.entities] == ["hub"]
    assert len(around.neighbours) == 20
