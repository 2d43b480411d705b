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

from service.memory.extraction import Extraction
from service.memory.extractor import entity_key

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


def entity_uid(project_id: str, name: str) -> str:
    return f"{project_id}:{entity_key(name)}"


def fact_uid(project_id: str, source: str, relation: str, target: str) -> str:
    raw = "\x1f".join((project_id, entity_key(source), relation, entity_key(target)))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(slots=True)
class GraphBatch:
    """Parameters for one write, accumulated episode by episode.

    Entities and facts are merged once per batch however many episodes mention them, which
    matters: a batch of episodes about one project names the same entities again and again.
    """

    episodes: list[dict[str, Any]] = field(default_factory=list)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    mentions: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        episode_id: str,
        project_id: str,
        source: str,
        valid_at: datetime,
        reference_time: datetime | None,
        extraction: Extraction,
    ) -> None:
        self.episodes.append(
            {"id": episode_id, "project_id": project_id, "source": source, "reference_time": reference_time}
        )
        for entity in extraction.entities:
            uid = entity_uid(project_id, entity.name)
            self.entities.setdefault(
                uid,
                {
                    "uid": uid,
                    "project_id": project_id,
                    "key": entity_key(entity.name),
                    "name": entity.name,
                    "type": entity.type,
                    "summary": entity.summary,
                },
            )
            self.mentions.append({"episode_id": episode_id, "uid": uid, "project_id": project_id})
        for fact in extraction.facts:
            uid = fact_uid(project_id, fact.source, fact.name, fact.target)
            merged = self.facts.setdefault(
                uid,
                {
                    "uid": uid,
                    "project_id": project_id,
                    "source_uid": entity_uid(project_id, fact.source),
                    "target_uid": entity_uid(project_id, fact.target),
                    "name": fact.name,
                    "fact": fact.fact,
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
