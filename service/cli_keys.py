"""`memstack keys create|list|revoke`: manage API keys directly in PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import uuid

from service.auth.keys import ADMIN_SCOPE, generate_key
from service.settings import Settings
from service.stores import tenancy
from service.stores.postgres import connect


async def _create(settings: Settings, tenant_name: str, name: str, admin: bool) -> None:
    async with await connect(settings) as conn:
        tenant = await tenancy.tenant_by_name(conn, tenant_name) or await tenancy.create_tenant(
            conn, tenant_name
        )
        if tenant is None:  # created concurrently by someone else
            tenant = await tenancy.tenant_by_name(conn, tenant_name)
        assert tenant is not None
        plaintext = generate_key()
        row = await tenancy.insert_key(conn, tenant.id, name, plaintext, [ADMIN_SCOPE] if admin else [])
    print(f"tenant:  {tenant.name} ({tenant.id})")
    print(f"key id:  {row.id}")
    print(f"api key: {plaintext}")
    print("Store the key now: it is not shown again.")


async def _list(settings: Settings, tenant_name: str) -> int:
    async with await connect(settings) as conn:
        tenant = await tenancy.tenant_by_name(conn, tenant_name)
        if tenant is None:
            print(f"no tenant named {tenant_name!r}")
            return 1
        rows = await tenancy.list_keys(conn, tenant.id)
    for row in rows:
        state = "revoked" if row.revoked_at else "active"
        scopes = ",".join(row.scopes) or "-"
        print(f"{row.id}  {row.prefix}…  {state:<7}  {scopes:<6}  {row.name}")
    return 0


async def _revoke(settings: Settings, key_id: uuid.UUID) -> int:
    async with await connect(settings) as conn:
        found = await tenancy.revoke_key(conn, None, key_id)
    print("revoked" if found else f"no key {key_id}")
    return 0 if found else 1


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        asyncio.run(_create(settings, args.tenant, args.name, args.admin))
        return 0
    if args.keys_command == "list":
        return asyncio.run(_list(settings, args.tenant))
    return asyncio.run(_revoke(settings, args.key_id))


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (the tenant is created if missing)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="grant the admin scope")
    listing = keys_sub.add_parser("list", help="list a tenant's keys (never their secrets)")
    listing.add_argument("--tenant", required=True)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=uuid.UUID)
    keys.set_defaults(handler=cmd_keys)
