"""API keys: random, shown once, stored only as a sha256 hash with a display prefix."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import msgspec

KEY_PREFIX = "msk_"
ADMIN_SCOPE = "admin"
BOOTSTRAP_TENANT = "bootstrap"
BOOTSTRAP_KEY_NAME = "bootstrap-admin"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key and the tenant it belongs to."""

    key_id: uuid.UUID
    tenant_id: uuid.UUID
    scopes: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes


def bearer_token(authorization: str) -> str | None:
    """The key in an `Authorization: Bearer <key>` header value, or None when there is none."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode("utf-8")).digest()


def display_prefix(plaintext: str) -> str:
    """Enough of the key to recognise it in a list, far too little to use it."""
    return plaintext[: len(KEY_PREFIX) + 6]
