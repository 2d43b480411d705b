"""Reading the knowledge graph: fulltext hits, neighbourhoods, one entity, a bounded export.

Every query filters on `project_id` itself, and an entity uid (`<project id>:<key>`) is only
ever looked up inside the caller's project. The fulltext indexes span all projects but also
index `project_id`, so a fulltext query requires its project inside Lucene (`fulltext_query`):
the procedure only ever sees, scores and keeps (its `limit` option) the caller's hits.

Decoding the answer is most of a read's cost in the API process, so rows are taken as they
arrive (`dict(record)`, not the recursive `record.data()`) and temporal properties come back as
`toString(...)`, parsed here (`_instant`): the driver's own DateTime hydration costs tens of
microseconds per value, and a search reads hundreds of facts (docs/search.md).

Entities are addressed over HTTP by a URL-safe id: the base64url encoding (no padding) of
their key (the name case-folded with spaces collapsed), so no extra index is needed and the
id is stable across re-ingestion.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from neo4j import AsyncDriver, AsyncManagedTransaction, NotificationDisabledClassification

from service.stores.graph import entity_uid

READ_RETRY_SECONDS = 3.0

# Search's candidates in one statement and one record: the entity hits, the fact hits and the
# neighbourhood of the first `$seeds` entity hits (each list in the procedures' order, best
# first). One transaction instead of three, and one message to decode instead of one per row:
# the async driver's cost is per message. The `project_id` filters after the procedures are a
# second guard; Lucene already applied them.
_SEARCH: LiteralString = """
CALL () {
  CALL db.index.fulltext.queryNodes('entity_text_v2', $entity_query, {limit: $limit}) YIELD node, score
  WHERE node.project_id = $project_id
  WITH node, score LIMIT $limit
  RETURN collect(node {.uid, .key, .name, .type, .summary, score: score}) AS entities
}
CALL () {
  CALL db.index.fulltext.queryRelationships('fact_text_v2', $fact_query, {limit: $limit})
  YIELD relationship AS r, score
  WHERE r.project_id = $project_id
  WITH r, score LIMIT $limit
  WITH r, score, startNode(r) AS a, endNode(r) AS b
  RETURN collect({uid: r.uid, name: r.name, fact: r.fact, score: score,
                  valid_at: toString(r.valid_at), invalid_at: toString(r.invalid_at),
                  source: a {.uid, .key, .name, .type}, target: b {.uid, .key, .name, .type}}) AS facts
}
CALL (entities) {
  UNWIND [hit IN entities[..$seeds] | hit.uid] AS seed
  MATCH (s:Entity {uid: seed})
  WHERE s.project_id = $project_id
  CALL (s) {
    MATCH (s)-[r:RELATES_TO]-(n:Entity)
    WHERE r.project_id = $project_id
    RETURN r, n LIMIT $per_seed
  }
  WITH seed, r, n, startNode(r) AS a, endNode(r) AS b
  RETURN collect({
    seed: seed, neighbour: n {.uid, .key, .name, .type, .summary},
    rel: r {.uid, .name, .fact, valid_at: toString(r.valid_at), invalid_at: toString(r.invalid_at)},
    source: a {.uid, .key, .name, .type}, target: b {.uid, .key, .name, .type}
  }) AS neighbours
}
RETURN entities, facts, neighbours
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
  RETURN collect({uid: r.uid, name: r.name, fact: r.fact, source: a.uid, target: b.uid,
                  valid_at: toString(r.valid_at), invalid_at: toString(r.invalid_at)}) AS facts
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
# The best-connected entities straight from the (project_id, degree) index, in its order; the
# facts among them are looked for in the first `$scan` outgoing facts of each; the project's
# totals from its counter nodes. One statement, one record (see `_SEARCH`).
_EXPORT: LiteralString = """
CALL () {
  MATCH (e:Entity)
  WHERE e.project_id = $project_id AND e.degree >= 0
  WITH e ORDER BY e.project_id DESC, e.degree DESC, e.uid LIMIT $limit
  RETURN collect(e) AS members
}
WITH members, [e IN members | e.uid] AS uids
CALL (members, uids) {
  UNWIND members AS a
  CALL (a) {
    MATCH (a)-[r:RELATES_TO]->(b:Entity)
    RETURN r, b LIMIT $scan
  }
  WITH r, a, b WHERE b.uid IN uids AND r.project_id = $project_id
  WITH r, a, b ORDER BY r.uid LIMIT $max_edges
  RETURN collect({uid: r.uid, name: r.name, fact: r.fact, source: a.uid, target: b.uid}) AS edges
}
CALL () {
  OPTIONAL MATCH (t:GraphTotals) WHERE t.project_id = $project_id
  RETURN coalesce(sum(t.entities), 0) AS entities, coalesce(sum(t.facts), 0) AS facts
}
RETURN [e IN members | e {.uid, .key, .name, .type, .degree}] AS nodes, edges, entities, facts
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


def _instant(value: str | None) -> datetime | None:
    """A `toString()` of a DATETIME (or null) as an aware datetime. Nanoseconds are cut to
    microseconds and a named zone (`...+01:00[Europe/Berlin]`) keeps its offset only."""
    return None if value is None else datetime.fromisoformat(value.partition("[")[0])


def _with_instants(fact: dict[str, Any]) -> dict[str, Any]:
    fact["valid_at"] = _instant(fact["valid_at"])
    fact["invalid_at"] = _instant(fact["invalid_at"])
    return fact


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
class SearchCandidates:
    """Rows of `_SEARCH`: entity and fact hits (each with its BM25 `score`), best first, and
    one row per fact next to a seed (`seed`, `neighbour`, `rel`, `source`, `target`)."""

    entities: list[dict[str, Any]]
    facts: list[dict[str, Any]]
    neighbours: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class GraphReader:
    driver: AsyncDriver
    database: str

    async def _read(self, cypher: LiteralString, /, **params: Any) -> list[dict[str, Any]]:
        async def work(tx: AsyncManagedTransaction) -> list[dict[str, Any]]:
            return [dict(record) async for record in await tx.run(cypher, params)]

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

    async def search_candidates(
        self, project_id: str, terms: str, limit: int, seeds: int, per_seed: int
    ) -> SearchCandidates:
        """The `limit` best entities and facts of the project for `terms` (escaped Lucene terms),
        best first, and the facts (at most `per_seed` each) around the first `seeds` entities."""
        rows = await self._read(
            _SEARCH,
            project_id=project_id,
            entity_query=fulltext_query(project_id, ENTITY_TEXT_FIELDS, terms),
            fact_query=fulltext_query(project_id, FACT_TEXT_FIELDS, terms),
            limit=limit,
            seeds=seeds,
            per_seed=per_seed,
        )
        row = rows[0]
        for neighbour in row["neighbours"]:
            _with_instants(neighbour["rel"])
        return SearchCandidates(
            entities=row["entities"],
            facts=[_with_instants(fact) for fact in row["facts"]],
            neighbours=row["neighbours"],
        )

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
        if not rows:
            return None
        for fact in rows[0]["facts"]:
            _with_instants(fact)
        return rows[0]

    async def export(self, project_id: str, limit: int, max_edges: int) -> dict[str, Any]:
        scan = EXPORT_SCAN_PER_NODE
        rows = await self._read(
            _EXPORT, project_id=project_id, limit=limit, scan=scan, max_edges=max_edges + 1
        )
        row = rows[0]
        nodes, edges = row["nodes"], row["edges"]
        total_nodes, total_edges = int(row["entities"]), int(row["facts"])
        # Each node's facts were looked at up to a cap: past it some edge may have been missed.
        capped = any(int(n["degree"]) > EXPORT_SCAN_PER_NODE for n in nodes)
        return {
            "nodes": nodes,
            "edges": edges[:max_edges],
            "total_nodes": total_nodes,
            "total_edges": total_edges,
            "truncated": total_nodes > len(nodes) or total_edges > min(len(edges), max_edges) or capped,
        }
