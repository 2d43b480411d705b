"""Readiness: every dependency answers within a short timeout and the schema is new enough."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis
from loguru import logger
from neo4j import AsyncDriver
from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool

from service.stores.postgres import current_schema_version, required_schema_version

CHECK_TIMEOUT_SECONDS = 2.0


class CheckResult(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str = ""


class ReadinessReport(msgspec.Struct, frozen=True):
    status: str
    checks: list[CheckResult]

    @property
    def ready(self) -> bool:
        return self.status == "ready"


@dataclass(frozen=True, slots=True)
class ReadinessDeps:
    """What readiness checks, and the gauge (`memstack_dependency_up`) it sets."""

    pool: AsyncConnectionPool
    redis: aioredis.Redis
    graph: AsyncDriver
    graph_database: str
    dependency_up: Gauge


async def _postgres(deps: ReadinessDeps) -> str:
    version = await current_schema_version(deps.pool, wait_seconds=CHECK_TIMEOUT_SECONDS)
    needed = required_schema_version()
    if version < needed:
        raise RuntimeError(f"schema version {version} is older than {needed}: run `memstack migrate`")
    return f"schema version {version} (needs >= {needed})"


async def _redis(deps: ReadinessDeps) -> str:
    await deps.redis.ping()
    return "ping ok"


async def _neo4j(deps: ReadinessDeps) -> str:
    await deps.graph.execute_query("RETURN 1", database_=deps.graph_database)
    return "query ok"


CHECKS: dict[str, Callable[[ReadinessDeps], Awaitable[str]]] = {
    "postgres": _postgres,
    "redis": _redis,
    "neo4j": _neo4j,
}


async def _run(
    name: str, check: Callable[[ReadinessDeps], Awaitable[str]], deps: ReadinessDeps
) -> CheckResult:
    try:
        detail = await asyncio.wait_for(check(deps), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return CheckResult(name, False, f"no answer within {CHECK_TIMEOUT_SECONDS:g}s")
    except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
        return CheckResult(name, False, f"{type(exc).__name__}: {_first_line(exc)}")
    return CheckResult(name, True, detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "failed"


async def check_readiness(deps: ReadinessDeps) -> ReadinessReport:
    results = await asyncio.gather(*(_run(name, check, deps) for name, check in CHECKS.items()))
    for result in results:
        deps.dependency_up.labels(result.name).set(1 if result.ok else 0)
    ok = all(result.ok for result in results)
    return ReadinessReport("ready" if ok else "unavailable", list(results))


# How often the API re-checks its dependencies on its own, so `memstack_dependency_up` stays
# current even when nothing calls /ready (the alert on it must not depend on probe traffic).
WATCH_INTERVAL_SECONDS = 10.0


async def watch_dependencies(deps: ReadinessDeps, interval: float = WATCH_INTERVAL_SECONDS) -> None:
    while True:
        try:
            await check_readiness(deps)
        except Exception as exc:  # never let the watcher die; the next round tries again
            logger.warning("dependency check failed: {error}", error=type(exc).__name__)
        await asyncio.sleep(interval)
