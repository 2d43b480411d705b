"""Tenants, API keys and projects in PostgreSQL (async, for the API and the CLI)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from service.auth.keys import (
    ADMIN_SCOPE,
    BOOTSTRAP_KEY_NAME,
    BOOTSTRAP_TENANT,
    Principal,
    display_prefix,
    hash_key,
)


class TenantRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    created_at: datetime


class ApiKeyRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ProjectRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    description: str
    created_at: datetime


_KEY_COLUMNS = "id, tenant_id, name, prefix, scopes, created_at, last_used_at, revoked_at"
_PROJECT_COLUMNS = "id, tenant_id, name, description, created_at"


async def create_tenant(conn: AsyncConnection, name: str) -> TenantRow | None:
    """None when the name is taken."""
    cur = conn.cursor(row_factory=class_row(TenantRow))
    await cur.execute(
        "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
        " RETURNING id, name, created_at",
        (uuid.uuid4(), name),
    )
    return await cur.fetchone()


async def list_tenants(conn: AsyncConnection) -> list[TenantRow]:
    cur = conn.cursor(row_factory=class_row(TenantRow))
    await cur.execute("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
    return await cur.fetchall()


async def get_tenant(conn: AsyncConnection, tenant_id: uuid.UUID) -> TenantRow | None:
    cur = conn.cursor(row_factory=class_row(TenantRow))
    await cur.execute("SELECT id, name, created_at FROM tenants WHERE id = %s", (tenant_id,))
    return await cur.fetchone()


async def tenant_by_name(conn: AsyncConnection, name: str) -> TenantRow | None:
    cur = conn.cursor(row_factory=class_row(TenantRow))
    await cur.execute("SELECT id, name, created_at FROM tenants WHERE name = %s", (name,))
    return await cur.fetchone()


async def insert_key(
    conn: AsyncConnection, tenant_id: uuid.UUID, name: str, plaintext: str, scopes: list[str]
) -> ApiKeyRow:
    cur = conn.cursor(row_factory=class_row(ApiKeyRow))
    await cur.execute(
        f"INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes)"  # noqa: S608 (constant columns)
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
        (uuid.uuid4(), tenant_id, name, display_prefix(plaintext), hash_key(plaintext), scopes),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def list_keys(conn: AsyncConnection, tenant_id: uuid.UUID) -> list[ApiKeyRow]:
    cur = conn.cursor(row_factory=class_row(ApiKeyRow))
    await cur.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id",  # noqa: S608
        (tenant_id,),
    )
    return await cur.fetchall()


async def revoke_key(conn: AsyncConnection, tenant_id: uuid.UUID | None, key_id: uuid.UUID) -> bool:
    """Revoke a key of the tenant (any tenant when None); False when there is no such key."""
    await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = %s AND (%s::uuid IS NULL OR tenant_id = %s)",
        (key_id, tenant_id, tenant_id),
    )
    cur = await conn.execute(
        "SELECT 1 FROM api_keys WHERE id = %s AND (%s::uuid IS NULL OR tenant_id = %s)",
        (key_id, tenant_id, tenant_id),
    )
    return await cur.fetchone() is not None


async def principal_for_key(conn: AsyncConnection, plaintext: str) -> Principal | None:
    """The key's principal, or None; only a key that resolves is written to (last_used_at)."""
    cur = await conn.execute(
        "SELECT id, tenant_id, scopes FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_key(plaintext),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", (row[0],))
    return Principal(key_id=row[0], tenant_id=row[1], scopes=tuple(row[2]))


async def ensure_bootstrap_key(conn: AsyncConnection, plaintext: str) -> None:
    """Create the bootstrap tenant and admin key once (idempotent, safe under concurrency)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (uuid.uuid4(), BOOTSTRAP_TENANT),
        )
        await conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes)"
            " SELECT %s, id, %s, %s, %s, %s FROM tenants WHERE name = %s"
            " ON CONFLICT (key_hash) DO NOTHING",
            (
                uuid.uuid4(),
                BOOTSTRAP_KEY_NAME,
                display_prefix(plaintext),
                hash_key(plaintext),
                [ADMIN_SCOPE],
                BOOTSTRAP_TENANT,
            ),
        )


async def create_project(
    conn: AsyncConnection, tenant_id: uuid.UUID, name: str, description: str
) -> ProjectRow | None:
    """None when the tenant already has a project of that name."""
    cur = conn.cursor(row_factory=class_row(ProjectRow))
    await cur.execute(
        f"INSERT INTO projects (id, tenant_id, name, description) VALUES (%s, %s, %s, %s)"  # noqa: S608
        f" ON CONFLICT (tenant_id, name) DO NOTHING RETURNING {_PROJECT_COLUMNS}",
        (uuid.uuid4(), tenant_id, name, description),
    )
    return await cur.fetchone()


async def get_project(
    conn: AsyncConnection, tenant_id: uuid.UUID, project_id: uuid.UUID
) -> ProjectRow | None:
    cur = conn.cursor(row_factory=class_row(ProjectRow))
    await cur.execute(
        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %s AND tenant_id = %s",  # noqa: S608
        (project_id, tenant_id),
    )
    return await cur.fetchone()


async def list_projects(
    conn: AsyncConnection, tenant_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[ProjectRow]:
    cur = conn.cursor(row_factory=class_row(ProjectRow))
    if after is None:
        await cur.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE tenant_id = %s"  # noqa: S608
            " ORDER BY created_at, id LIMIT %s",
            (tenant_id, limit),
        )
    else:
        await cur.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE tenant_id = %s"  # noqa: S608
            " AND (created_at, id) > (%s, %s) ORDER BY created_at, id LIMIT %s",
            (tenant_id, after[0], after[1], limit),
        )
    return await cur.fetchall()
