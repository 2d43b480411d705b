"""Projects: every read is scoped to the caller's tenant (another tenant's project is a 404)."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_409_CONFLICT
from psycopg_pool import AsyncConnectionPool

from service.api.deps import Caller, Erasure, Pool
from service.api.errors import problem_spec
from service.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, cut_page, decode_cursor
from service.api.schemas import ProjectIn, ProjectOut, ProjectPage
from service.auth.keys import Principal
from service.memory.erasure import ERASURE_UNAVAILABLE, erase_project
from service.stores import tenancy
from service.stores.tenancy import ProjectRow


async def project_of(pool: AsyncConnectionPool, principal: Principal, project_id: uuid.UUID) -> ProjectRow:
    async with pool.connection() as conn:
        project = await tenancy.get_project(conn, principal.tenant_id, project_id)
    if project is None:
        raise NotFoundException(f"No project {project_id}")
    return project


def project_out(row: ProjectRow) -> ProjectOut:
    return ProjectOut(id=row.id, name=row.name, description=row.description, created_at=row.created_at)


class ProjectController(Controller):
    path = "/projects"
    tags = ["projects"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a project",
        responses={409: problem_spec("The tenant has a project of that name")},
    )
    async def create_project(self, data: JSONBody[ProjectIn], principal: Caller, pool: Pool) -> ProjectOut:
        async with pool.connection() as conn:
            row = await tenancy.create_project(conn, principal.tenant_id, data.name, data.description)
        if row is None:
            raise ClientException(f"A project named {data.name!r} exists", status_code=HTTP_409_CONFLICT)
        return project_out(row)

    @get("/", summary="List projects (cursor pagination)")
    async def list_projects(
        self,
        principal: Caller,
        pool: Pool,
        cursor: FromQuery[str | None] = None,
        limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    ) -> ProjectPage:
        async with pool.connection() as conn:
            rows = await tenancy.list_projects(conn, principal.tenant_id, decode_cursor(cursor), limit + 1)
        rows, next_cursor = cut_page(rows, limit)
        return ProjectPage(items=[project_out(r) for r in rows], next_cursor=next_cursor)

    @get("/{project_id:uuid}", summary="Get a project")
    async def get_project(self, project_id: FromPath[uuid.UUID], principal: Caller, pool: Pool) -> ProjectOut:
        return project_out(await project_of(pool, principal, project_id))

    @delete(
        "/{project_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Erase a project everywhere",
        description="Deletes its episodes and the project in PostgreSQL, its graph, its event stream and "
        "its LLM cache. 409 with Retry-After while a worker is processing one of its episodes.",
        responses={
            409: problem_spec("A worker is processing one of its episodes; see Retry-After"),
            503: problem_spec(ERASURE_UNAVAILABLE),
        },
    )
    async def delete_project(
        self, project_id: FromPath[uuid.UUID], principal: Caller, erasure: Erasure
    ) -> None:
        await erase_project(erasure, principal.tenant_id, project_id)
