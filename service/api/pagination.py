"""Opaque cursors over (created_at, id), the order every list uses."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Protocol, TypeVar

from litestar.exceptions import ValidationException

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Row(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> uuid.UUID: ...


RowT = TypeVar("RowT", bound=Row)


def cut_page(rows: list[RowT], limit: int) -> tuple[list[RowT], str | None]:
    """Rows were fetched with limit + 1: keep `limit` and say where the next page starts."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id)


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationException(
            "Invalid cursor",
            extra=[{"key": "cursor", "message": "not a cursor returned by this API", "source": "query"}],
        ) from None
