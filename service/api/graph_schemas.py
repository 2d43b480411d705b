"""HTTP structs for search and graph reads. Inputs reject unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

# The domain's result type (and the EntityRef it holds) is served as it is.
from service.memory.search import SearchResult

EntityType = Annotated[str, Meta(min_length=1, max_length=100)]
Query = Annotated[str, Meta(min_length=1, max_length=500, pattern=r"\S")]

MAX_SEARCH_LIMIT = 100


class SearchIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    query: Query
    limit: Annotated[int, Meta(ge=1, le=MAX_SEARCH_LIMIT)] = 10
    # Entity types to return (facts: at least one end of one of these types); null = all.
    types: Annotated[list[EntityType], Meta(max_length=20)] | None = None


class SearchOut(msgspec.Struct, frozen=True):
    query: str
    results: list[SearchResult]


class EntityOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    type: str
    summary: str


class NeighbourOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    type: str
    summary: str
    distance: int


class FactOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    fact: str
    source: str  # entity id
    target: str  # entity id
    valid_at: datetime | None
    invalid_at: datetime | None


class EntityDetail(msgspec.Struct, frozen=True):
    entity: EntityOut
    episodes: list[uuid.UUID]  # episodes that mention it (at most 100)
    neighbours: list[NeighbourOut]
    facts: list[FactOut]
    truncated: bool  # more neighbours exist than were returned


class GraphNode(msgspec.Struct, frozen=True):
    id: str
    name: str
    type: str
    degree: int


class GraphEdge(msgspec.Struct, frozen=True):
    id: str
    name: str
    fact: str
    source: str
    target: str


class GraphExport(msgspec.Struct, frozen=True):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    total_nodes: int
    total_edges: int
    truncated: bool
