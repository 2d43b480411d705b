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
meanwhile, and deletes the graph in batches of `GRAPH_BATCH` nodes per transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import LiteralString

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
# One batch of a project's nodes (with their relationships); returns how many were deleted.
_PROJECT_BATCH: dict[str, LiteralString] = {
    "Episode": """
MATCH (n:Episode) WHERE n.project_id = $project_id
WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS deleted
""",
    "Entity": """
MATCH (n:Entity) WHERE n.project_id = $project_id
WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS deleted
""",
    "RELATES_TO": """
MATCH ()-[r:RELATES_TO]->() WHERE r.project_id = $project_id
WITH r LIMIT $batch DELETE r RETURN count(*) AS deleted
""",
    # Bookkeeping, not counted in what was erased.
    "GraphTotals": """
MATCH (n:GraphTotals) WHERE n.project_id = $project_id
DELETE n WITH count(*) AS _ RETURN 0 AS deleted
""",
}


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
    driver: AsyncDriver, database: str, project_id: str, batch_size: int = GRAPH_BATCH
) -> int:
    """Delete every node and relationship of the project, `batch_size` per transaction."""

    async def batch(tx: AsyncManagedTransaction, query: LiteralString) -> int:
        record = await (await tx.run(query, project_id=project_id, batch=batch_size)).single()
        return int(record["deleted"]) if record else 0

    total = 0
    async with driver.session(database=database, max_transaction_retry_time=RETRY_SECONDS) as session:
        for query in _PROJECT_BATCH.values():
            while deleted := await session.execute_write(batch, query):
                total += deleted
    return total


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
