"""Opaque list cursors over (created_at, id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from litestar.exceptions import ValidationException

from service.api.pagination import cut_page, decode_cursor, encode_cursor

AT = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    created_at: datetime
    id: uuid.UUID


def test_a_cursor_round_trips_and_has_no_padding() -> None:
    row_id = uuid.uuid4()
    cursor = encode_cursor(AT, row_id)
    assert "=" not in cursor
    assert decode_cursor(cursor) == (AT, row_id)


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGEgY3Vyc29y", encode_cursor(AT, uuid.uuid4())[:-6]])
def test_a_foreign_cursor_is_a_validation_error_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(ValidationException) as caught:
        decode_cursor(cursor)
    assert caught.value.extra == [
        {"key": "cursor", "message": "not a cursor returned by this API", "source": "query"}
    ]


def test_a_page_cut_from_limit_plus_one_rows_points_at_its_last_row() -> None:
    rows = [Row(AT + timedelta(seconds=i), uuid.uuid4()) for i in range(4)]
    page, cursor = cut_page(rows, 3)
    assert page == rows[:3]
    assert cursor is not None
    assert decode_cursor(cursor) == (rows[2].created_at, rows[2].id)


def test_the_last_page_has_no_cursor() -> None:
    rows = [Row(AT, uuid.uuid4()) for _ in range(3)]
    assert cut_page(rows, 3) == (rows, None)
