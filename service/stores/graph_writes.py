"""Writing extractions into Neo4j: one statement of UNWIND batches in one transaction.

MERGE on deterministic keys (episode id, entity uid, fact uid) makes a retried or repeated
write a no-op, and every node and relationship carries its project_id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString

from neo4j import Driver, ManagedTransaction

from service.stores.graph import entity_uid

# One statement, four unit subqueries: one round trip however large the batch. Later
# subqueries see what earlier ones wrote.
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
                  e.summary = n.summary, e.created_at = datetime()
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
                  r.valid_at = f.valid_at, r.invalid_at = null, r.episodes = f.episodes,
                  r.created_at = datetime()
    ON MATCH SET r.episodes = r.episodes + [id IN f.episodes WHERE NOT id IN r.episodes]
}
"""


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
        """`relation` is (source key, relation name, target key); each episode stating it is recorded."""
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
    ).consume()


def write_batch(driver: Driver, database: str, batch: GraphBatch) -> None:
    """One managed transaction; the driver retries it on transient errors (deadlocks, leader change)."""
    if not batch:
        return
    with driver.session(database=database) as session:
        session.execute_write(_write, batch)
