"""Search a project's knowledge graph (fulltext + neighbourhood, ranked; see service.memory.search)."""

from __future__ import annotations

import uuid

from litestar import Controller, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from service.api.deps import Caller, Pool, Reader
from service.api.graph import GRAPH_UNAVAILABLE
from service.api.graph_schemas import SearchIn, SearchOut
from service.api.projects import project_of
from service.memory.errors import graph_errors
from service.memory.search import search


class SearchController(Controller):
    path = "/projects/{project_id:uuid}/search"
    tags = ["search"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_200_OK,
        summary="Search entities and facts",
        description="BM25 fulltext over entity names/summaries and facts, merged with the 1-hop graph "
        "neighbourhood of the best entities. `score = text + neighbourhood bonus`, in [0, 1.5], where "
        "`text` is the BM25 score relative to the best hit of its kind and the bonus is half the `text` "
        "of the best adjacent top-5 entity. The query is plain text (no Lucene syntax).",
        responses={503: GRAPH_UNAVAILABLE},
    )
    async def search_project(
        self,
        project_id: FromPath[uuid.UUID],
        data: JSONBody[SearchIn],
        principal: Caller,
        pool: Pool,
        reader: Reader,
    ) -> SearchOut:
        await project_of(pool, principal, project_id)
        async with graph_errors():
            results = await search(reader, str(project_id), data.query, data.limit, data.types)
        return SearchOut(query=data.query, results=results)
