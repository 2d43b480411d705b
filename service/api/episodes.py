"""Episodes: accept (one or in bulk), list, get and delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.exceptions import NotFoundException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from service.api.deps import Caller, Erasure, Intake, Pool
from service.api.errors import problem_spec
from service.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, cut_page, decode_cursor
from service.api.projects import project_of
from service.api.schemas import BulkEpisodesIn, BulkEpisodesOut, EpisodeIn, EpisodeOut, EpisodePage
from service.memory.erasure import ERASURE_UNAVAILABLE, delete_episode
from service.stores import episodes as store
from service.stores.episodes import EpisodeRow, EpisodeStatus, NewEpisode

QUEUE_UNAVAILABLE = "The queue is full or unavailable; see Retry-After"


def episode_out(row: EpisodeRow, *, with_content: bool = False) -> EpisodeOut:
    return EpisodeOut(
        id=row.id,
        project_id=row.project_id,
        status=row.status,
        source=row.source,
        reference_time=row.reference_time,
        metadata=row.metadata,
        client_id=row.idempotency_key,
        attempts=row.attempts,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        content=row.content if with_content else None,
    )


def new_episode(data: EpisodeIn, idempotency_key: str | None = None) -> NewEpisode:
    return NewEpisode(
        content=data.content,
        source=data.source,
        reference_time=data.reference_time,
        metadata=data.metadata,
        idempotency_key=idempotency_key or data.client_id,
    )


class EpisodeController(Controller):
    path = "/projects/{project_id:uuid}/episodes"
    tags = ["episodes"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Accept an episode for ingestion",
        description="202 with status `queued`. Repeating an `Idempotency-Key` (or `client_id`) returns the "
        "first episode with 200 instead of creating another. 503 with Retry-After when the queue is full.",
        responses={
            200: ResponseSpec(
                EpisodeOut, description="A replayed Idempotency-Key or client_id: the first episode"
            ),
            503: problem_spec(QUEUE_UNAVAILABLE),
        },
    )
    async def create_episode(
        self,
        project_id: FromPath[uuid.UUID],
        data: JSONBody[EpisodeIn],
        intake: Intake,
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200)
        ] = None,
    ) -> Response[EpisodeOut]:
        items = [new_episode(data, idempotency_key)]
        inserted, duplicates = await intake.accept(project_id, items)
        if inserted:
            return Response(episode_out(inserted[0]), status_code=HTTP_202_ACCEPTED)
        return Response(
            episode_out(duplicates[0]), status_code=HTTP_200_OK, headers={"Idempotent-Replayed": "true"}
        )

    @post(
        "/bulk",
        status_code=HTTP_202_ACCEPTED,
        summary="Accept up to 1000 episodes at once",
        description="Items with a `client_id` seen before are returned under `duplicates`.",
        responses={503: problem_spec(QUEUE_UNAVAILABLE)},
    )
    async def create_episodes(
        self,
        project_id: FromPath[uuid.UUID],
        data: JSONBody[BulkEpisodesIn],
        intake: Intake,
    ) -> BulkEpisodesOut:
        items = [new_episode(e) for e in data.episodes]
        inserted, duplicates = await intake.accept(project_id, items)
        return BulkEpisodesOut(
            accepted=[episode_out(r) for r in inserted], duplicates=[episode_out(r) for r in duplicates]
        )

    @get("/", summary="List episodes (cursor pagination, optional status filter)")
    async def list_episodes(
        self,
        project_id: FromPath[uuid.UUID],
        principal: Caller,
        pool: Pool,
        status: FromQuery[EpisodeStatus | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    ) -> EpisodePage:
        await project_of(pool, principal, project_id)
        async with pool.connection() as conn:
            rows = await store.list_episodes(conn, project_id, status, decode_cursor(cursor), limit + 1)
        rows, next_cursor = cut_page(rows, limit)
        return EpisodePage(items=[episode_out(r) for r in rows], next_cursor=next_cursor)

    @get("/{episode_id:uuid}", summary="Get an episode with its content and status")
    async def get_episode(
        self,
        project_id: FromPath[uuid.UUID],
        episode_id: FromPath[uuid.UUID],
        principal: Caller,
        pool: Pool,
    ) -> EpisodeOut:
        await project_of(pool, principal, project_id)
        async with pool.connection() as conn:
            row = await store.get_episode(conn, project_id, episode_id)
        if row is None:
            raise NotFoundException(f"No episode {episode_id}")
        return episode_out(row, with_content=True)

    @delete(
        "/{episode_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete an episode and what only it supported",
        description="Removes the episode, the facts only it supported and the entities no other episode "
        "mentions; shared facts keep their other sources. 409 with Retry-After while a worker processes it.",
        responses={
            409: problem_spec("A worker is processing this episode; see Retry-After"),
            503: problem_spec(ERASURE_UNAVAILABLE),
        },
    )
    async def delete_episode(
        self,
        project_id: FromPath[uuid.UUID],
        episode_id: FromPath[uuid.UUID],
        principal: Caller,
        pool: Pool,
        erasure: Erasure,
    ) -> None:
        await project_of(pool, principal, project_id)
        await delete_episode(erasure, project_id, episode_id)
