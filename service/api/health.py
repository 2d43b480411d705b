"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from litestar import Controller, MediaType, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from service.api.deps import Readiness
from service.readiness import ReadinessReport, check_readiness


class Liveness(msgspec.Struct, frozen=True):
    status: str


class HealthController(Controller):
    tags = ["health"]  # noqa: RUF012 (Litestar declares it as an instance attribute)

    @get("/health", summary="Liveness: the process is up (touches no dependency)", cache_control=None)
    async def health(self) -> Liveness:
        return Liveness("ok")

    @get(
        "/ready",
        summary="Readiness: PostgreSQL, Redis and Neo4j answer and the schema is new enough",
        responses={503: ResponseSpec(data_container=ReadinessReport, description="A dependency failed")},
    )
    async def ready(self, readiness: Readiness) -> Response[ReadinessReport]:
        report = await check_readiness(readiness)
        return Response(
            report,
            status_code=HTTP_200_OK if report.ready else HTTP_503_SERVICE_UNAVAILABLE,
            media_type=MediaType.JSON,
        )
