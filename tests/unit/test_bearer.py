"""The one parser of `Authorization: Bearer <key>` (used by auth and by the rate limiter)."""

from __future__ import annotations

import pytest

from service.auth.keys import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer msk_abc", "msk_abc"),
        ("bearer   msk_abc  ", "msk_abc"),
        ("BEARER msk_abc", "msk_abc"),
        ("Bearer", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token
