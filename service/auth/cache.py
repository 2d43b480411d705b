"""A short-lived in-process cache of resolved keys, sparing PostgreSQL a query per request.

A revoked key keeps working in a process for at most TTL_SECONDS.
"""

from __future__ import annotations

import time

from service.auth.keys import Principal

TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[bytes, tuple[float, Principal]] = {}

    def get(self, key_hash: bytes) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        expires, principal = entry
        if expires < time.monotonic():
            del self._entries[key_hash]
            return None
        return principal

    def put(self, key_hash: bytes, principal: Principal) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self._ttl, principal)

    def clear(self) -> None:
        self._entries.clear()
