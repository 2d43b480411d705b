"""Reading the knowledge graph: fulltext hits, neighbourhoods, one entity, a bounded export.

Every query filters on `project_id` itself, and an entity uid (`<project id>:<key>`) is only
ever looked up inside the caller's project. The fulltext indexes span all projects but also
index `project_id`, so a fulltext query requires its project inside Lucene (`fulltext_query`):
the procedure only ever sees, scores and keeps (its `limit` option) the caller's hits.

Entities are addressed over HTTP by a URL-safe id: the base64url encoding (no padding) of
their key (the name case-folded with spaces collapsed), so no extra index is needed and the
id is stable across re-ingestion.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, LiteralString

from neo4j import AsyncDriver, AsyncManagedTransaction, NotificationDisabledClassification

from service.stores.graph import entity_uid

READ_RETRY_SECONDS = 3.0

# The `project_id` filters after the procedures are a second guard; Lucene already applied them.
_ENTITY_HITS: LiteralString = """
CALL db.index.fulltext.queryNodes('entity_text_v2', $query, {limit: $limit}) YIELD node, score
WHERE node.project_id = $project_id
RETURN node.uid AS uid, node.key AS key, node.name AS name, node.type AS type,
       node.summary AS summary, score
LIMIT $limit
"""
_FACT_HITS: LiteralString = """
CALL db.index.fulltext.queryRelationships('fact_text_v2', $query, {limit: $limit})
YIELD relationship AS r, score
WHERE r.project_id = $project_id
WITH r, score LIMIT $limit
WITH r, score, startNode(r) AS a, endNode(r) AS b
RETURN r.uid AS uid, r.name AS name, r.fact AS fact, r.valid_at AS valid_at, r.invalid_at AS invalid_at,
       a {.uid, .key, .name, .type} AS source, b {.uid, .key, .name, .type} AS target, score
"""
_NEIGHBOURHOOD: LiteralString = """
UNWIND $seeds AS seed
MATCH (s:Entity {uid: seed})
WHERE s.project_id = $project_id
CALL (s) {
  MATCH (s)-[r:RELATES_TO]-(n:Entity)
  WHERE r.project_id = $project_id
  RETURN r, n LIMIT $per_seed
}
WITH seed, r, n, startNode(r) AS a, endNode(r) AS b
RETURN seed, n {.uid, .key, .name, .type, .summary} AS neighbour,
       r {.uid, .name, .fact, .valid_at, .invalid_at} AS rel,
       a {.uid, .key, .name, .type} AS source, b {.uid, .key, .name, .type} AS target
"""
# Every expansion has its own LIMIT before the next one, so a hub with 10,000 facts is never
# walked whole: at most `$scan` relationships of the entity for ring 1, `$scan` of each ring-1
# neighbour for ring 2, and `$scan` of each member for the facts among them (a fact between
# two members is found from either end, so only one between two members that both have more
# than `$scan` facts can be missed).
_ENTITY: LiteralString = """
MATCH (e:Entity {uid: $uid})
WHERE e.project_id = $project_id
CALL (e) {
  MATCH (e)-[:RELATES_TO]-(n:Entity)
  WITH n LIMIT $scan
  WITH DISTINCT n WHERE n <> e AND n.project_id = $project_id
  WITH n LIMIT $limit
  RETURN collect(n) AS ring1
}
CALL (e, ring1) {
  UNWIND CASE WHEN $depth >= 2 THEN ring1 ELSE [] END AS n1
  CALL (n1) {
    MATCH (n1)-[:RELATES_TO]-(n2:Entity)
    RETURN n2 LIMIT $scan
  }
  WITH DISTINCT n2 WHERE n2 <> e AND NOT n2 IN ring1 AND n2.project_id = $project_id
  WITH n2 LIMIT $limit
  RETURN collect(n2) AS ring2
}
WITH e, ring1, ring2[..($limit - size(ring1))] AS ring2, size(ring2) > $limit - size(ring1) AS cut
WITH e, ring1, ring2, cut, [e] + ring1 + ring2 AS members
CALL (members) {
  UNWIND members AS x
  CALL (x) {
    MATCH (x)-[r:RELATES_TO]-(:Entity)
    RETURN r LIMIT $scan
  }
  WITH DISTINCT r, startNode(r) AS a, endNode(r) AS b
  WHERE a IN members AND b IN members
  WITH r, a, b LIMIT $max_facts
  RETURN collect({uid: r.uid, name: r.name, fact: r.fact, valid_at: r.valid_at, invalid_at: r.invalid_at,
                  source: a.uid, target: b.uid}) AS facts
}
CALL (e) {
  MATCH (ep:Episode)-[:MENTIONS]->(e)
  WITH ep LIMIT $max_episodes
  WITH ep.id AS id ORDER BY id
  RETURN collect(id) AS episodes
}
RETURN e {.uid, .key, .name, .type, .summary} AS entity, episodes,
       [n IN ring1 | n {.uid, .key, .name, .type, .summary, distance: 1}]
       + [n IN ring2 | n {.uid, .key, .name, .type, .summary, distance: 2}] AS neighbours,
       facts, cut OR size(ring1) >= $limit AS truncated
"""
# The best-connected entities straight from the (project_id, degree) index, in its order;
# the facts among them are looked for in the first `$scan` outgoing facts of each.
_EXPORT_NODES: LiteralString = """
MATCH (e:Entity)
WHERE e.project_id = $project_id AND e.degree >= 0
WITH e ORDER BY e.project_id DESC, e.degree DESC, e.uid LIMIT $limit
RETURN e {.uid, .key, .name, .type, .degree} AS node
"""
_EXPORT_EDGES: LiteralString = """
UNWIND $uids AS uid
MATCH (a:Entity {uid: uid})
CALL (a) {
  MATCH (a)-[r:RELATES_TO]->(b:Entity)
  RETURN r, b LIMIT $scan
}
WITH r, a, b WHERE b.uid IN $uids AND r.project_id = $project_id
WITH r, a, b ORDER BY r.uid LIMIT $max_edges
RETURN r.uid AS uid, r.name AS name, r.fact AS fact, a.uid AS source, b.uid AS target
"""
_TOTALS: LiteralString = """
OPTIONAL MATCH (t:GraphTotals) WHERE t.project_id = $project_id
RETURN coalesce(sum(t.entities), 0) AS entities, coalesce(sum(t.facts), 0) AS facts
"""
# How many relationships of one node the entity read and the export look at, per node.
SCAN_PER_NODE = 1000
EXPORT_SCAN_PER_NODE = 50


# The text properties of each fulltext index (service.stores.graph); its `project_id` is not one.
ENTITY_TEXT_FIELDS = ("name", "summary")
FACT_TEXT_FIELDS = ("fact", "name")


def fulltext_query(project_id: str, fields: tuple[str, ...], terms: str) -> str:
    """The Lucene query for `terms` (already escaped Lucene terms, see
    `service.memory.search.lucene_query`) in the text `fields` of one project's documents.

    The project is a required phrase on `project_id`: the analyzer splits a UUID at its hyphens,
    and every indexed id has the same five tokens, so the phrase matches that id only. Its boost
    is 0, so it adds nothing to the BM25 scores. The terms are required as a group, each one
    scoped to every text field, so no term of the user's can reach `project_id` or be read
    as an operator outside the group."""
    project = project_id.replace("\\", "\\\\").replace('"', '\\"')
    text = " ".join(f"{field}:({terms})" for field in fields)
    return f'+project_id:"{project}"^0 +({text})'


def entity_id(key: str) -> str:
    """The URL-safe id of an entity key."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def key_of(entity_id_: str) -> str | None:
    """The key behind an id from `entity_id`, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(entity_id_ + "=" * (-len(entity_id_) % 4))
        key = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return key if key and entity_id(key) == entity_id_ else None


@dataclass(frozen=True, slots=True)
class GraphReader:
    driver: AsyncDriver
    database: str

    async def _read(self, cypher: LiteralString, /, **params: Any) -> list[dict[str, Any]]:
        async def work(tx: AsyncManagedTransaction) -> list[dict[str, Any]]:
            return [record.data() async for record in await tx.run(cypher, params)]

        # An HTTP read retries briefly (the driver's default is 30 s), then the caller answers 503.
        # `invalid_at` is written as null, so until some fact has one the property key does not
        # exist and Neo4j would warn ("UNRECOGNIZED") on every read that returns it.
        async with self.driver.session(
            database=self.database,
            max_transaction_retry_time=READ_RETRY_SECONDS,
            notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED],
        ) as session:
            rows: list[dict[str, Any]] = await session.execute_read(work)
        return rows

    async def entity_hits(self, project_id: str, terms: str, limit: int) -> list[dict[str, Any]]:
        """The `limit` best entities of the project for `terms` (escaped Lucene terms), best first."""
        query = fulltext_query(project_id, ENTITY_TEXT_FIELDS, terms)
        return await self._read(_ENTITY_HITS, project_id=project_id, query=query, limit=limit)

    async def fact_hits(self, project_id: str, terms: str, limit: int) -> list[dict[str, Any]]:
        """The `limit` best facts of the project for `terms` (escaped Lucene terms), best first."""
        query = fulltext_query(project_id, FACT_TEXT_FIELDS, terms)
        return await self._read(_FACT_HITS, project_id=project_id, query=query, limit=limit)

    async def neighbourhood(self, project_id: str, seeds: list[str], per_seed: int) -> list[dict[str, Any]]:
        if not seeds:
            return []
        return await self._read(_NEIGHBOURHOOD, project_id=project_id, seeds=seeds, per_seed=per_seed)

    async def entity(
        self, project_id: str, key: str, depth: int, limit: int, max_facts: int, max_episodes: int
    ) -> dict[str, Any] | None:
        rows = await self._read(
            _ENTITY,
            project_id=project_id,
            uid=entity_uid(project_id, key),
            depth=depth,
            limit=limit,
            scan=max(SCAN_PER_NODE, 4 * limit),
            max_facts=max_facts,
            max_episodes=max_episodes,
        )
        return rows[0] if rows else None

    async def export(self, project_id: str, limit: int, max_edges: int) -> dict[str, Any]:
        nodes = [row["node"] for row in await self._read(_EXPORT_NODES, project_id=project_id, limit=limit)]
        edges = await self._read(
            _EXPORT_EDGES,
            project_id=project_id,
            uids=[n["uid"] for n in nodes],
            scan=EXPORT_SCAN_PER_NODE,
            max_edges=max_edges + 1,
        )
        totals = (await self._read(_TOTALS, project_id=project_id))[0]
        total_nodes, total_edges = int(totals["entities"]), int(totals["facts"])
        # Each node's facts were looked at up to a cap: past it some edge may have been missed.
        capped = any(int(n["degree"]) > EXPORT_SCAN_PER_NODE for n in nodes)
        return {
            "nodes": nodes,
            "edges": edges[:max_edges],
            "total_nodes": total_nodes,
            "total_edges": total_edges,
            "truncated": total_nodes > len(nodes) or total_edges > min(len(edges), max_edges) or capped,
        }
