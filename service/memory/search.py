"""Search: BM25 fulltext over entities and facts, merged with the graph neighbourhood, ranked.

Ranking (all scores are relative to the best lexical hit of this query, in [0, 1.5]):
- `text(x)` = BM25 score of x / the best BM25 score of its kind (entities and facts have
  separate indexes whose scores are not comparable, so each kind is normalised on its own).
- The top `SEEDS` entity hits are seeds. Their 1-hop neighbours (at most `PER_SEED` facts
  each) join the candidates.
- `bonus(x)` = `NEIGHBOUR_WEIGHT` x the best `text` of a seed x is adjacent to (for an
  entity: a seed it shares a fact with; for a fact: a seed at either end), 0 otherwise.
- `score(x) = text(x) + bonus(x)`. A text hit that also sits next to a good seed rises; a
  result found only through the graph scores at most `NEIGHBOUR_WEIGHT`.
Ties break on name, then id, so equal queries give equal orders. `types` keeps entities of
those types and facts with at least one end of those types.

The user's query is never parsed as Lucene syntax: special characters are escaped and the
text lower-cased (Lucene's AND/OR/NOT operators are upper-case only), and at most
`MAX_TERMS` terms are kept. The reader then scopes those terms to each index's text fields
and requires the project inside Lucene (`service.stores.graph_reads.fulltext_query`), so each
index returns at most its candidates, all of the caller's project.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec

from service.stores.graph_reads import GraphReader, entity_id

SEEDS = 5
PER_SEED = 20
NEIGHBOUR_WEIGHT = 0.5
MAX_TERMS = 32
# Candidates taken from each index: enough to re-rank, never the whole index.
MIN_CANDIDATES = 30

_LUCENE_SPECIAL = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')


class EntityRef(msgspec.Struct, frozen=True):
    id: str
    name: str
    type: str


class SearchResult(msgspec.Struct, frozen=True):
    kind: Literal["entity", "fact"]
    id: str  # entity: its URL-safe id; fact: its uid
    name: str  # entity name or relation name
    score: float
    matched: Literal["text", "neighbourhood"]  # how it was found
    type: str | None = None  # entity type
    summary: str | None = None  # entity summary
    fact: str | None = None  # the fact sentence
    source: EntityRef | None = None
    target: EntityRef | None = None
    valid_at: datetime | None = None


def lucene_query(text: str) -> str | None:
    """The query as plain Lucene terms, or None when nothing searchable is left."""
    terms = text.split()[:MAX_TERMS]
    escaped = " ".join(_LUCENE_SPECIAL.sub(r"\\\1", term.lower()) for term in terms)
    return escaped if any(ch.isalnum() for ch in escaped) else None


def _ref(node: dict[str, Any]) -> EntityRef:
    return EntityRef(id=entity_id(node["key"]), name=node["name"], type=node["type"])


@dataclass(slots=True)
class _Candidate:
    kind: str
    row: dict[str, Any]
    text: float = 0.0
    bonus: float = 0.0
    types: set[str] = field(default_factory=set)

    @property
    def score(self) -> float:
        return self.text + self.bonus


def _entity_result(c: _Candidate) -> SearchResult:
    row = c.row
    return SearchResult(
        kind="entity",
        id=entity_id(row["key"]),
        name=row["name"],
        score=round(c.score, 6),
        matched="text" if c.text > 0 else "neighbourhood",
        type=row["type"],
        summary=row.get("summary"),
    )


def _fact_result(c: _Candidate) -> SearchResult:
    row = c.row
    return SearchResult(
        kind="fact",
        id=row["uid"],
        name=row["name"],
        score=round(c.score, 6),
        matched="text" if c.text > 0 else "neighbourhood",
        fact=row["fact"],
        source=_ref(row["source"]),
        target=_ref(row["target"]),
        valid_at=row.get("valid_at"),
    )


def _normalised(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    best = max((float(r["score"]) for r in rows), default=0.0)
    return [(r, float(r["score"]) / best if best > 0 else 0.0) for r in rows]


def seed_uids(entity_rows: list[dict[str, Any]]) -> list[str]:
    """The entity hits whose neighbourhood joins the candidates: the first `SEEDS`, best first."""
    return [row["uid"] for row in entity_rows[:SEEDS]]


def rank(
    entity_rows: list[dict[str, Any]],
    fact_rows: list[dict[str, Any]],
    neighbour_rows: list[dict[str, Any]],
    types: list[str] | None,
    limit: int,
) -> list[SearchResult]:
    """Fulltext hits (best first, with BM25 `score`) and the seeds' neighbourhood, ranked as the
    module docstring says; pure, so the ranking can be checked without a database."""
    entities: dict[str, _Candidate] = {}
    facts: dict[str, _Candidate] = {}
    for row, text in _normalised(entity_rows):
        entities[row["uid"]] = _Candidate("entity", row, text=text, types={row["type"]})
    for row, text in _normalised(fact_rows):
        facts[row["uid"]] = _Candidate(
            "fact", row, text=text, types={row["source"]["type"], row["target"]["type"]}
        )

    seeds = {uid: entities[uid].text for uid in seed_uids(entity_rows)}
    adjacent: dict[str, float] = defaultdict(float)
    for row in neighbour_rows:
        bonus = NEIGHBOUR_WEIGHT * seeds[row["seed"]]
        neighbour = row["neighbour"]
        if neighbour["uid"] != row["seed"]:
            adjacent[neighbour["uid"]] = max(adjacent[neighbour["uid"]], bonus)
            entities.setdefault(neighbour["uid"], _Candidate("entity", neighbour, types={neighbour["type"]}))
        fact_row = {**row["rel"], "source": row["source"], "target": row["target"]}
        fact = facts.setdefault(
            fact_row["uid"],
            _Candidate("fact", fact_row, types={row["source"]["type"], row["target"]["type"]}),
        )
        fact.bonus = max(fact.bonus, bonus)
    for uid, bonus in adjacent.items():
        entities[uid].bonus = bonus

    wanted = set(types) if types is not None else None
    ranked = [c for c in (*entities.values(), *facts.values()) if wanted is None or c.types & wanted]
    ranked.sort(key=lambda c: (-c.score, c.row["name"], c.row["uid"]))
    return [_entity_result(c) if c.kind == "entity" else _fact_result(c) for c in ranked[:limit]]


async def search(
    reader: GraphReader, project_id: str, text: str, limit: int, types: list[str] | None = None
) -> list[SearchResult]:
    """The `limit` best results for `text`; `types` keeps only entities (and facts touching
    entities) of those types."""
    query = lucene_query(text)
    if query is None:
        return []
    candidates_per_index = max(MIN_CANDIDATES, 3 * limit)
    found = await reader.search_candidates(project_id, query, candidates_per_index, SEEDS, PER_SEED)
    return rank(found.entities, found.facts, found.neighbours, types, limit)
