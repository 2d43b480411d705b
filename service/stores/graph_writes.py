"""Writing extractions into Neo4j: one statement of UNWIND batches in one transaction.

MERGE on deterministic keys (episode id, entity uid, fact uid) makes a retried or repeated
write a no-op, and every node and relationship carries its project_id.

Which episodes state a fact is recorded on the episode's side, never on the fact: one
`(:Episode)-[:STATES {fact: <fact uid>}]->(:Entity)` relationship per episode and fact (to
the fact's source entity), and the fact's `support` counts them. The count only grows when
that STATES relationship is created (MERGE), so a retried write counts nothing twice; a
write, a read and an episode's erasure cost the same whether 1 or 100,000 episodes state
the fact (`service.stores.erasure` walks the episode's STATES to decrement and delete).
An entity's `degree` (its RELATES_TO count, either direction) is kept the same way, so the
export reads the best-connected entities from an index instead of counting every entity,
and so are a project's totals of entities and facts: `GRAPH_TOTALS_SHARDS` (:GraphTotals)
nodes per project, a write adding what it created to one of them chosen at random (last,
after every other lock it takes, so concurrent writers rarely wait on the same counter).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString

from neo4j import Driver, ManagedTransaction

from service.stores.graph import entity_uid

# One statement of subqueries: one round trip however large the batch. Later subqueries see
# what earlier ones wrote; the last adds what was created to the project's totals.
_WRITE: LiteralString = """
CALL () {
  UNWIND $episodes AS e
  MERGE (ep:Episode {id: e.id})
    ON CREATE SET ep.project_id = e.project_id, ep.source = e.source,
                  ep.reference_time = e.reference_time, ep.created_at = datetime()
}
CALL () {
  UNWIND $entities AS n
  MERGE (e:Entity {uid: n.uid})
    ON CREATE SET e.project_id = n.project_id, e.key = n.key, e.name = n.name, e.type = n.type,
                  e.summary = n.summary, e.degree = 0, e.created_at = datetime(), e.fresh = true
  WITH n, e.fresh IS NOT NULL AS fresh, e
  REMOVE e.fresh
  WITH n.project_id AS project_id, count(CASE WHEN fresh THEN 1 END) AS created
  RETURN collect({project_id: project_id, entities: created, facts: 0}) AS new_entities
}
CALL () {
  UNWIND $mentions AS m
  MATCH (ep:Episode {id: m.episode_id})
  MATCH (e:Entity {uid: m.uid})
  MERGE (ep)-[r:MENTIONS]->(e)
    ON CREATE SET r.project_id = m.project_id
}
CALL () {
  UNWIND $facts AS f
  MATCH (a:Entity {uid: f.source_uid})
  MATCH (b:Entity {uid: f.target_uid})
  MERGE (a)-[r:RELATES_TO {uid: f.uid}]->(b)
    ON CREATE SET r.project_id = f.project_id, r.name = f.name, r.fact = f.fact,
                  r.valid_at = f.valid_at, r.invalid_at = null, r.support = 0,
                  r.created_at = datetime(), r.fresh = true
  WITH a, b, r, f, r.fresh IS NOT NULL AS fresh
  CALL (a, b, fresh) {
    WITH a, b WHERE fresh
    SET a.degree = coalesce(a.degree, 0) + 1, b.degree = coalesce(b.degree, 0) + 1
  }
  REMOVE r.fresh
  WITH a, r, f, fresh
  CALL (a, r, f) {
    UNWIND f.episodes AS episode_id
    MATCH (ep:Episode {id: episode_id})
    MERGE (ep)-[s:STATES {fact: f.uid}]->(a)
      ON CREATE SET s.project_id = f.project_id, s.fresh = true
    WITH s, s.fresh IS NOT NULL AS stated
    REMOVE s.fresh
    RETURN count(CASE WHEN stated THEN 1 END) AS added
  }
  SET r.support = coalesce(r.support, 0) + added
  WITH f.project_id AS project_id, count(CASE WHEN fresh THEN 1 END) AS created
  RETURN collect({project_id: project_id, entities: 0, facts: created}) AS new_facts
}
CALL (new_entities, new_facts) {
  UNWIND new_entities + new_facts AS c
  WITH c.project_id AS project_id, sum(c.entities) AS entities, sum(c.facts) AS facts
  WHERE entities > 0 OR facts > 0
  MERGE (t:GraphTotals {key: project_id + ':' + toString($shard)})
    ON CREATE SET t.project_id = project_id, t.entities = 0, t.facts = 0
  SET t.entities = t.entities + entities, t.facts = t.facts + facts
}
"""


GRAPH_TOTALS_SHARDS = 8


def fact_uid(project_id: str, source_key: str, relation: str, target_key: str) -> str:
    raw = "\x1f".join((project_id, source_key, relation, target_key))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(slots=True)
class GraphBatch:
    """Parameters for one write, accumulated episode by episode.

    Entities and facts are merged once per batch however many episodes mention them, which
    matters: a batch of episodes about one project names the same entities again and again.
    Entities are identified by their key (see `service.memory.extraction.entity_key`).
    """

    episodes: list[dict[str, Any]] = field(default_factory=list)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    mentions: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_episode(
        self, episode_id: str, project_id: str, source: str, reference_time: datetime | None
    ) -> None:
        self.episodes.append(
            {"id": episode_id, "project_id": project_id, "source": source, "reference_time": reference_time}
        )

    def add_mention(
        self, episode_id: str, project_id: str, key: str, name: str, type_: str, summary: str
    ) -> None:
        """The episode mentions the entity; the first mention in the batch gives its properties."""
        uid = entity_uid(project_id, key)
        self.entities.setdefault(
            uid,
            {
                "uid": uid,
                "project_id": project_id,
                "key": key,
                "name": name,
                "type": type_,
                "summary": summary,
            },
        )
        self.mentions.append({"episode_id": episode_id, "uid": uid, "project_id": project_id})

    def add_fact(
        self,
        episode_id: str,
        project_id: str,
        relation: tuple[str, str, str],
        fact: str,
        valid_at: datetime,
    ) -> None:
        """`relation` is (source key, relation name, target key); each episode stating it gets a STATES."""
        source_key, name, target_key = relation
        uid = fact_uid(project_id, source_key, name, target_key)
        merged = self.facts.setdefault(
            uid,
            {
                "uid": uid,
                "project_id": project_id,
                "source_uid": entity_uid(project_id, source_key),
                "target_uid": entity_uid(project_id, target_key),
                "name": name,
                "fact": fact,
                "valid_at": valid_at,
                "episodes": [],
            },
        )
        if episode_id not in merged["episodes"]:
            merged["episodes"].append(episode_id)

    def __bool__(self) -> bool:
        return bool(self.episodes)


def _write(tx: ManagedTransaction, batch: GraphBatch) -> None:
    tx.run(
        _WRITE,
        episodes=batch.episodes,
        entities=list(batch.entities.values()),
        mentions=batch.mentions,
        facts=list(batch.facts.values()),
        shard=random.randrange(GRAPH_TOTALS_SHARDS),  # noqa: S311 (spreads lock contention)
    ).consume()


def write_batch(driver: Driver, database: str, batch: GraphBatch) -> None:
    """One managed transaction; the driver retries it on transient errors (deadlocks, leader change)."""
    if not batch:
        return
    with driver.session(database=database) as session:
        session.execute_write(_write, batch)
