"""PostgreSQL: the connection pool and the ordered, expand-only SQL migrations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

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


def create_pool(settings: Settings) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        settings.postgres_conninfo,
        min_size=1,
        max_size=settings.postgres_pool_size,
        open=False,
        timeout=5.0,
        kwargs={"autocommit": True, "connect_timeout": 3},
        name="memstack",
    )


async def migrate(settings: Settings) -> list[int]:
    """Apply pending migrations under an advisory lock; returns the versions applied now."""
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(
        settings.postgres_conninfo, autocommit=True, connect_timeout=10
    ) as conn:
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
