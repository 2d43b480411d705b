"""Graph reads: one entity with its facts and neighbours, and a bounded export for visualisation."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, Parameter

from service.api.deps import Caller, Pool, Reader
from service.api.errors import problem_spec
from service.api.graph_schemas import (
    EntityDetail,
    EntityOut,
    FactOut,
    GraphEdge,
    GraphExport,
    GraphNode,
    NeighbourOut,
)
from service.api.projects import project_of
from service.memory.errors import graph_errors
from service.stores.graph_reads import entity_id, key_of

MAX_NEIGHBOURS = 200
MAX_ENTITY_EPISODES = 100
MAX_EXPORT_NODES = 2000
EDGES_PER_NODE = 5


GRAPH_UNAVAILABLE = problem_spec("The graph database is unavailable or too slow; see Retry-After")


def _ids(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {row["uid"]: entity_id(row["key"]) for row in rows}


class GraphController(Controller):
    path = "/projects/{project_id:uuid}"
    tags = ["graph"]  # noqa: RUF012

    @get(
        "/entities/{entity_id:str}",
        summary="An entity with its facts and neighbours",
        description="`entity_id` is the `id` that search and the graph export return: the base64url "
        "encoding (no padding) of the entity's key (its name case-folded, spaces collapsed). "
        "`depth` 1 or 2; at most `limit` neighbours, and the facts between the entity and them.",
        responses={503: GRAPH_UNAVAILABLE},
    )
    async def get_entity(
        self,
        project_id: FromPath[uuid.UUID],
        entity_id: FromPath[str],
        principal: Caller,
        pool: Pool,
        reader: Reader,
        depth: int = Parameter(default=1, ge=1, le=2),
        limit: int = Parameter(default=50, ge=1, le=MAX_NEIGHBOURS),
    ) -> EntityDetail:
        await project_of(pool, principal, project_id)
        key = key_of(entity_id)
        row = None
        if key is not None:
            async with graph_errors():
                row = await reader.entity(str(project_id), key, depth, limit, 4 * limit, MAX_ENTITY_EPISODES)
        if row is None:
            raise NotFoundException(f"No entity {entity_id}")
        entity, neighbours = row["entity"], row["neighbours"]
        ids = _ids([entity, *neighbours])
        return EntityDetail(
            entity=EntityOut(
                id=ids[entity["uid"]], name=entity["name"], type=entity["type"], summary=entity["summary"]
            ),
            episodes=[uuid.UUID(e) for e in row["episodes"]],
            neighbours=[
                NeighbourOut(
                    id=ids[n["uid"]],
                    name=n["name"],
                    type=n["type"],
                    summary=n["summary"],
                    distance=n["distance"],
                )
                for n in neighbours
            ],
            facts=[
                FactOut(
                    id=f["uid"],
                    name=f["name"],
                    fact=f["fact"],
                    source=ids[f["source"]],
                    target=ids[f["target"]],
                    valid_at=f["valid_at"],
                    invalid_at=f["invalid_at"],
                )
                for f in row["facts"]
            ],
            truncated=bool(row["truncated"]),
        )

    @get(
        "/graph",
        summary="A bounded export of the project's graph",
        description="The `limit` best-connected entities (by degree, then uid) and the facts between them "
        f"(at most {EDGES_PER_NODE} x limit); `truncated` says whether anything was left out.",
        responses={503: GRAPH_UNAVAILABLE},
    )
    async def export_graph(
        self,
        project_id: FromPath[uuid.UUID],
        principal: Caller,
        pool: Pool,
        reader: Reader,
        limit: int = Parameter(default=500, ge=1, le=MAX_EXPORT_NODES),
    ) -> GraphExport:
        await project_of(pool, principal, project_id)
        async with graph_errors():
            graph = await reader.export(str(project_id), limit, EDGES_PER_NODE * limit)
        ids = _ids(graph["nodes"])
        return GraphExport(
            nodes=[
                GraphNode(id=ids[n["uid"]], name=n["name"], type=n["type"], degree=n["degree"])
                for n in graph["nodes"]
            ],
            edges=[
                GraphEdge(
                    id=e["uid"],
                    name=e["name"],
                    fact=e["fact"],
                    source=ids[e["source"]],
                    target=ids[e["target"]],
                )
                for e in graph["edges"]
            ],
            total_nodes=graph["total_nodes"],
            total_edges=graph["total_edges"],
            truncated=graph["truncated"],
        )
