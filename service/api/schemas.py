"""Structs at the HTTP edge. Inputs reject unknown fields; outputs never carry secrets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

# Text PostgreSQL can store: no NUL (U+0000) anywhere; "non-blank" ones need a visible character.
_NON_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*\Z"
_NO_NUL = r"^[^\x00]*\Z"
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=_NON_BLANK)]
Description = Annotated[str, Meta(max_length=2000, pattern=_NO_NUL)]
Content = Annotated[str, Meta(min_length=1, max_length=100_000, pattern=_NON_BLANK)]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=200, pattern=_NON_BLANK)]
AwareDatetime = Annotated[datetime, Meta(tz=True)]
Scope = Literal["admin"]

MAX_BULK_EPISODES = 1000
# What every store and reader can hold in any time zone: PostgreSQL would take year 0 or 10000
# (e.g. 0001-01-01T00:00+14:00), but no reader could load it back.
EARLIEST_REFERENCE_TIME = datetime(1, 1, 2, tzinfo=UTC)
LATEST_REFERENCE_TIME = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


class TenantIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name


class TenantOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    created_at: datetime


class ApiKeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    tenant_id: uuid.UUID | None = None  # admins only: issue a key for another tenant
    scopes: list[Scope] = msgspec.field(default_factory=list)


class ApiKeyOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(msgspec.Struct, frozen=True):
    key: str  # the plaintext, shown this once
    api_key: ApiKeyOut


class ProjectIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    description: Description = ""


class ProjectOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime


class EpisodeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    content: Content
    source: Literal["text", "message", "json"] = "text"
    reference_time: AwareDatetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # Repeating a client id returns the first episode instead of a duplicate (like Idempotency-Key).
    client_id: IdempotencyKey | None = None

    def __post_init__(self) -> None:
        if self.metadata and b"\\u0000" in msgspec.json.encode(self.metadata):
            raise ValueError("metadata: must not contain NUL (U+0000) characters")
        at = self.reference_time
        if at is not None and not EARLIEST_REFERENCE_TIME <= at <= LATEST_REFERENCE_TIME:
            raise ValueError("reference_time: must lie between 0001-01-02 and 9999-12-30 (UTC)")


class BulkEpisodesIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    episodes: Annotated[list[EpisodeIn], Meta(min_length=1, max_length=MAX_BULK_EPISODES)]


class EpisodeOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    project_id: uuid.UUID
    status: str
    source: str
    reference_time: datetime | None
    metadata: dict[str, Any]
    client_id: str | None
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    content: str | None = None


class BulkEpisodesOut(msgspec.Struct, frozen=True):
    accepted: list[EpisodeOut]
    duplicates: list[EpisodeOut]


class Page(msgspec.Struct, frozen=True):
    next_cursor: str | None


class ProjectPage(Page, frozen=True):
    items: list[ProjectOut]


class EpisodePage(Page, frozen=True):
    items: list[EpisodeOut]
