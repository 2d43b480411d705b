"""PostgreSQL: every connection and pool of the service, and the ordered, expand-only SQL migrations.

The API's asyncio pool, the worker's synchronous pool and the CLI's single connections are
all made here, from `Settings.postgres_conninfo` (address, credentials, TLS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from service.settings import Settings

MIGRATIONS_PACKAGE = "service.stores.migrations"
# Any constant works as long as every MemStack process agrees on it.
_MIGRATION_LOCK_ID = 0x6D656D73  # "mems"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


def required_schema_version() -> int:
    """The schema version this code needs; a newer one is accepted (rollbacks)."""
    return len(load_migrations())


def _pool_options(
    settings: Settings, *, max_size: int, timeout: float, connect_timeout: int
) -> dict[str, Any]:
    """Autocommit connections (transactions are explicit), opened by the caller."""
    return {
        "conninfo": settings.postgres_conninfo,
        "min_size": 1,
        "max_size": max_size,
        "open": False,
        "timeout": timeout,
        "kwargs": {"autocommit": True, "connect_timeout": connect_timeout},
    }


def create_pool(settings: Settings) -> AsyncConnectionPool:
    """The API's pool: POSTGRES_POOL_SIZE connections, a request waits at most 5 s for one."""
    options = _pool_options(settings, max_size=settings.postgres_pool_size, timeout=5.0, connect_timeout=3)
    return AsyncConnectionPool(**options, name="memstack")


def create_worker_pool(settings: Settings) -> ConnectionPool:
    """The worker's pool: one job at a time needs one connection, the reconciler another."""
    options = _pool_options(settings, max_size=2, timeout=10.0, connect_timeout=5)
    return ConnectionPool(**options, name="memstack-worker")


async def connect(settings: Settings) -> psycopg.AsyncConnection:
    """One autocommit connection, for migrations and the CLI."""
    return await psycopg.AsyncConnection.connect(
        settings.postgres_conninfo, autocommit=True, connect_timeout=10
    )


async def migrate(settings: Settings) -> list[int]:
    """Apply pending migrations under an advisory lock; returns the versions applied now."""
    applied_now: list[int] = []
    async with await connect(settings) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for migration in load_migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied_now.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied_now


async def current_schema_version(pool: AsyncConnectionPool, wait_seconds: float) -> int:
    async with pool.connection(timeout=wait_seconds) as conn:
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
