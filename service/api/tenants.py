"""Tenants and their API keys."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, delete, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_409_CONFLICT

from service.api.auth import require_admin
from service.api.deps import Caller, Keys, Pool
from service.api.errors import problem_spec
from service.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, TenantIn, TenantOut
from service.auth.keys import generate_key
from service.stores import tenancy

ADMIN_ONLY = "Needs an API key with the admin scope"


class TenantController(Controller):
    path = "/tenants"
    tags = ["tenants"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a tenant (admin)",
        responses={403: problem_spec(ADMIN_ONLY), 409: problem_spec("A tenant of that name exists")},
    )
    async def create_tenant(self, data: JSONBody[TenantIn], principal: Caller, pool: Pool) -> TenantOut:
        require_admin(principal)
        async with pool.connection() as conn:
            row = await tenancy.create_tenant(conn, data.name)
        if row is None:
            raise ClientException(f"A tenant named {data.name!r} exists", status_code=HTTP_409_CONFLICT)
        return TenantOut(id=row.id, name=row.name, created_at=row.created_at)

    @get("/", summary="List tenants (admin)", responses={403: problem_spec(ADMIN_ONLY)})
    async def list_tenants(self, principal: Caller, pool: Pool) -> list[TenantOut]:
        require_admin(principal)
        async with pool.connection() as conn:
            rows = await tenancy.list_tenants(conn)
        return [TenantOut(id=r.id, name=r.name, created_at=r.created_at) for r in rows]


def _key_out(row: tenancy.ApiKeyRow) -> ApiKeyOut:
    # Same fields by design: the row never holds the key hash, so nothing secret can leak.
    return ApiKeyOut(**msgspec.structs.asdict(row))


class ApiKeyController(Controller):
    path = "/keys"
    tags = ["api keys"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create an API key (the plaintext is returned once)",
        responses={403: problem_spec(ADMIN_ONLY)},
    )
    async def create_key(self, data: JSONBody[ApiKeyIn], principal: Caller, pool: Pool) -> ApiKeyCreated:
        tenant_id = data.tenant_id or principal.tenant_id
        if tenant_id != principal.tenant_id or data.scopes:
            require_admin(principal)
        plaintext = generate_key()
        async with pool.connection() as conn:
            if await tenancy.get_tenant(conn, tenant_id) is None:
                raise NotFoundException(f"No tenant {tenant_id}")
            row = await tenancy.insert_key(conn, tenant_id, data.name, plaintext, list(data.scopes))
        return ApiKeyCreated(key=plaintext, api_key=_key_out(row))

    @get(
        "/",
        summary="List the API keys of your tenant (admins: of any tenant)",
        responses={403: problem_spec(ADMIN_ONLY)},
    )
    async def list_keys(
        self, principal: Caller, pool: Pool, tenant_id: FromQuery[uuid.UUID | None] = None
    ) -> list[ApiKeyOut]:
        if tenant_id is not None and tenant_id != principal.tenant_id:
            require_admin(principal)
        async with pool.connection() as conn:
            rows = await tenancy.list_keys(conn, tenant_id or principal.tenant_id)
        return [_key_out(r) for r in rows]

    @delete("/{key_id:uuid}", summary="Revoke an API key")
    async def revoke_key(
        self, key_id: FromPath[uuid.UUID], principal: Caller, pool: Pool, key_cache: Keys
    ) -> None:
        scope = None if principal.is_admin else principal.tenant_id
        async with pool.connection() as conn:
            found = await tenancy.revoke_key(conn, scope, key_id)
        if not found:
            raise NotFoundException(f"No API key {key_id}")
        key_cache.clear()
