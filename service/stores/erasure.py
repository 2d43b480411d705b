"""The statements behind deleting an episode and erasing a project (`service.memory.erasure`
orchestrates them).

Both run inside one PostgreSQL transaction that deletes the rows first and commits last:
- the row locks taken by the DELETE make a worker's `claim()` of those episodes wait, and
  once we commit it finds no rows, so no job can start writing their graph afterwards;
- an episode a worker has already claimed (`processing`, touched within the job timeout)
  may still be writing its graph, so we refuse (`InProgress`) rather than race it;
- a crash anywhere before the commit leaves the PostgreSQL rows in place, so the same
  DELETE can simply be repeated; the graph, stream and cache steps are idempotent.
Project erasure also holds the project row FOR UPDATE, so no episode can be added to it
meanwhile, and deletes the graph in batches, each its own transaction, bounded by what Neo4j
holds in memory for it: at most `GRAPH_BATCH` relationships (or nodes without any), never a
node together with however many relationships it has (a hub entity or a long episode has
far more than a node batch's worth, past the server's transaction memory limit). First the
project's facts (through the `relates_project` index), then each episode's STATES and
MENTIONS, each episode once it has none left, then the entities (which have none left
either), then the project's GraphTotals counters. Each batch re-reads what is left, so an
erasure interrupted after any batch simply resumes where it stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, LiteralString, NamedTuple

from neo4j import AsyncDriver, AsyncManagedTransaction
from psycopg import AsyncConnection

GRAPH_BATCH = 1000
# Per graph transaction; past it the erasure gives up (nothing committed in PostgreSQL).
RETRY_SECONDS = 5.0

# Facts the episode stated, through its own STATES relationships (so the work is what the
# episode stated, not the project's facts): one less supporter each; a fact left without
# any is deleted. The fact is found through the `relates_uid` index, never by walking a hub.
_EPISODE_FACTS: LiteralString = """
MATCH (ep:Episode {id: $episode_id})-[s:STATES]->()
WHERE ep.project_id = $project_id
WITH s, s.fact AS uid
DELETE s
WITH DISTINCT uid
MATCH ()-[r:RELATES_TO {uid: uid}]->()
WHERE r.project_id = $project_id
SET r.support = r.support - 1
WITH r WHERE r.support <= 0
WITH r, startNode(r) AS a, endNode(r) AS b
SET a.degree = a.degree - 1, b.degree = b.degree - 1
DELETE r
WITH count(*) AS deleted
CALL (deleted) {
  WITH deleted WHERE deleted > 0
  MERGE (t:GraphTotals {key: $project_id + ':0'})
    ON CREATE SET t.project_id = $project_id, t.entities = 0, t.facts = 0
  SET t.facts = t.facts - deleted
}
"""
# Entities no other episode mentions and no remaining fact touches; then the episode node.
_EPISODE_NODES: LiteralString = """
MATCH (ep:Episode {id: $episode_id})
WHERE ep.project_id = $project_id
OPTIONAL MATCH (ep)-[:MENTIONS]->(n:Entity)
WHERE NOT EXISTS { MATCH (other:Episode)-[:MENTIONS]->(n) WHERE other <> ep }
  AND NOT EXISTS { MATCH (n)-[:RELATES_TO]-() }
WITH ep, collect(n) AS orphans
FOREACH (n IN orphans | DETACH DELETE n)
DETACH DELETE ep
WITH size(orphans) AS deleted
CALL (deleted) {
  WITH deleted WHERE deleted > 0
  MERGE (t:GraphTotals {key: $project_id + ':0'})
    ON CREATE SET t.project_id = $project_id, t.entities = 0, t.facts = 0
  SET t.entities = t.entities - deleted
}
"""
# One batch each of the steps of a project's erasure, in order; each step is repeated until a
# batch deletes nothing. A node's relationships go `$batch` at a time (one row each) before
# the node; a node with none left is one row too, and goes in the batch that finds it so (an
# episode done is never read again, so batches cost what they delete, however many episodes).
_RELATIONSHIPS_THEN_NODE: LiteralString = """
OPTIONAL MATCH (n)-[r]-()
WITH n, r LIMIT $batch
DELETE r
WITH DISTINCT n WHERE NOT EXISTS { (n)--() }
DELETE n
"""
_PROJECT_STEPS: tuple[LiteralString, ...] = (
    """
MATCH ()-[r:RELATES_TO]->() WHERE r.project_id = $project_id
WITH r LIMIT $batch DELETE r
""",
    "MATCH (n:Episode) WHERE n.project_id = $project_id" + _RELATIONSHIPS_THEN_NODE,
    "MATCH (n:Entity) WHERE n.project_id = $project_id" + _RELATIONSHIPS_THEN_NODE,
    # Bookkeeping (a few counter nodes, without relationships), not counted in what was erased.
    """
MATCH (n:GraphTotals) WHERE n.project_id = $project_id
WITH n LIMIT $batch DELETE n
""",
)


class Deleted(NamedTuple):
    nodes: int
    relationships: int


class InProgress(Exception):
    """An episode is being processed by a worker right now; nothing was deleted."""


async def delete_episode_graph(driver: AsyncDriver, database: str, project_id: str, episode_id: str) -> None:
    async def work(tx: AsyncManagedTransaction) -> None:
        params = {"project_id": project_id, "episode_id": episode_id}
        await (await tx.run(_EPISODE_FACTS, params)).consume()
        await (await tx.run(_EPISODE_NODES, params)).consume()

    async with driver.session(database=database, max_transaction_retry_time=RETRY_SECONDS) as session:
        await session.execute_write(work)


async def erase_project_graph(
    driver: AsyncDriver, database: str, project_id: str, batch_size: int | None = None
) -> int:
    """Delete every node and relationship of the project, each transaction at most `batch_size`
    (default `GRAPH_BATCH`) relationships or nodes; returns how many entities and episodes went."""
    batch = batch_size or GRAPH_BATCH
    erased = 0
    async with driver.session(database=database, max_transaction_retry_time=RETRY_SECONDS) as session:
        for step, query in enumerate(_PROJECT_STEPS):
            while True:
                nodes, relationships = await session.execute_write(
                    _erase_batch, query, {"project_id": project_id, "batch": batch}
                )
                if not nodes and not relationships:
                    break
                if step < len(_PROJECT_STEPS) - 1:
                    erased += nodes
    return erased


async def _erase_batch(tx: AsyncManagedTransaction, query: LiteralString, params: dict[str, Any]) -> Deleted:
    """One batch of an erasure step: the nodes and relationships it deleted, as Neo4j counted them."""
    counters = (await (await tx.run(query, params)).consume()).counters
    return Deleted(counters.nodes_deleted, counters.relationships_deleted)


def _refuse_if_processing(rows: list[tuple[str, float]], recent: float) -> None:
    if any(status == "processing" and age < recent for status, age in rows):
        raise InProgress


async def delete_episode_rows(
    conn: AsyncConnection,
    project_id: uuid.UUID,
    episode_id: uuid.UUID,
    busy_window: timedelta,
    then: Callable[[], Awaitable[None]],
) -> bool:
    """Delete the episode row, run `then` (the graph cleanup), commit. False when there is none."""
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM episodes WHERE id = %s AND project_id = %s"
            " RETURNING status, extract(epoch FROM now() - updated_at)",
            (episode_id, project_id),
        )
        rows = [(str(s), float(a)) for s, a in await cur.fetchall()]
        if not rows:
            return False
        _refuse_if_processing(rows, busy_window.total_seconds())
        await then()
    return True


async def erase_project_rows(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    project_id: uuid.UUID,
    busy_window: timedelta,
    then: Callable[[list[str]], Awaitable[None]],
) -> bool:
    """Delete the project's rows, run `then(job ids)` (graph, Redis), commit. False when there is none."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT 1 FROM projects WHERE id = %s AND tenant_id = %s FOR UPDATE", (project_id, tenant_id)
        )
        if await cur.fetchone() is None:
            return False
        cur = await conn.execute(
            "DELETE FROM episodes WHERE project_id = %s"
            " RETURNING status, extract(epoch FROM now() - updated_at), job_id",
            (project_id,),
        )
        deleted = await cur.fetchall()
        _refuse_if_processing([(str(s), float(a)) for s, a, _ in deleted], busy_window.total_seconds())
        await then(sorted({str(job) for _, _, job in deleted if job}))
        await conn.execute("DELETE FROM projects WHERE id = %s", (project_id,))
    return True
