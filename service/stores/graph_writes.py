"""Writing extractions into Neo4j: three UNWIND statements in one transaction.

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

_EPISODES: LiteralString = """
UNWIND $episodes AS e
MERGE (ep:Episode {id: e.id})
  ON CREATE SET ep.project_id = e.project_id, ep.source = e.source,
                ep.reference_time = e.reference_time, ep.created_at = datetime()
"""
_MENTIONS: LiteralString = """
UNWIND $mentions AS m
MERGE (n:Entity {uid: m.uid})
  ON CREATE SET n.project_id = m.project_id, n.key = m.key, n.name = m.name, n.type = m.type,
                n.summary = m.summary, n.created_at = datetime()
WITH n, m
MATCH (ep:Episode {id: m.episode_id})
MERGE (ep)-[:MENTIONS]->(n)
"""
_FACTS: LiteralString = """
UNWIND $facts AS f
MATCH (a:Entity {uid: f.source_uid}), (b:Entity {uid: f.target_uid})
MERGE (a)-[r:RELATES_TO {uid: f.uid}]->(b)
  ON CREATE SET r.project_id = f.project_id, r.name = f.name, r.fact = f.fact,
                r.valid_at = f.valid_at, r.invalid_at = null, r.episodes = [f.episode_id],
                r.created_at = datetime()
  ON MATCH SET r.episodes = CASE WHEN f.episode_id IN r.episodes THEN r.episodes
                                 ELSE r.episodes + f.episode_id END
"""


def entity_uid(project_id: str, name: str) -> str:
    return f"{project_id}:{entity_key(name)}"


def fact_uid(project_id: str, source: str, relation: str, target: str) -> str:
    raw = "\x1f".join((project_id, entity_key(source), relation, entity_key(target)))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(slots=True)
class GraphBatch:
    """Parameters for one write, accumulated episode by episode."""

    episodes: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)

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
            self.mentions.append(
                {
                    "episode_id": episode_id,
                    "uid": entity_uid(project_id, entity.name),
                    "project_id": project_id,
                    "key": entity_key(entity.name),
                    "name": entity.name,
                    "type": entity.type,
                    "summary": entity.summary,
                }
            )
        for fact in extraction.facts:
            self.facts.append(
                {
                    "uid": fact_uid(project_id, fact.source, fact.name, fact.target),
                    "project_id": project_id,
                    "source_uid": entity_uid(project_id, fact.source),
                    "target_uid": entity_uid(project_id, fact.target),
                    "name": fact.name,
                    "fact": fact.fact,
                    "valid_at": valid_at,
                    "episode_id": episode_id,
                }
            )

    def __bool__(self) -> bool:
        return bool(self.episodes)


def _write(tx: ManagedTransaction, batch: GraphBatch) -> None:
    tx.run(_EPISODES, episodes=batch.episodes).consume()
    if batch.mentions:
        tx.run(_MENTIONS, mentions=batch.mentions).consume()
    if batch.facts:
        tx.run(_FACTS, facts=batch.facts).consume()


def write_batch(driver: Driver, database: str, batch: GraphBatch) -> None:
    """One managed transaction; the driver retries it on transient errors (deadlocks, leader change)."""
    if not batch:
        return
    with driver.session(database=database) as session:
        session.execute_write(_write, batch)
