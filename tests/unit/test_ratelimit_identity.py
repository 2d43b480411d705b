"""Who the rate limiter counts a request against (pure functions, no Redis)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from service.api.ratelimit import (
    RateLimitMiddleware,
    client_identity,
    client_ip,
    parse_trusted_proxies,
    rate_limit_headers,
)
from service.settings import Settings
from service.stores.ratelimit import RateDecision


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


PROXIES = parse_trusted_proxies(["10.0.0.0/8", "192.168.1.5", "fd00::/8"])


def scope(peer: str, *headers: tuple[str, str], path: str = "/api/v1/projects") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "client": (peer, 50000),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def test_bearer_token_is_hashed_never_kept() -> None:
    token = "msk_secret_value_0123456789"
    identity = client_identity(scope("203.0.113.9", ("authorization", f"Bearer {token}")), PROXIES)
    assert identity == "key:" + hashlib.sha256(token.encode()).hexdigest()
    assert token not in identity


def test_without_a_token_the_peer_address_counts() -> None:
    assert client_identity(scope("203.0.113.9"), PROXIES) == "ip:203.0.113.9"
    assert client_identity(scope("203.0.113.9", ("authorization", "Basic abc")), PROXIES) == "ip:203.0.113.9"


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert client_ip(scope("203.0.113.9", ("x-forwarded-for", "198.51.100.1")), PROXIES) == "203.0.113.9"
    assert client_ip(scope("10.1.2.3", ("x-forwarded-for", "198.51.100.1")), ()) == "10.1.2.3"


def test_forwarded_for_from_a_trusted_proxy_yields_the_first_untrusted_hop_from_the_right() -> None:
    spoofed = ("x-forwarded-for", "1.2.3.4, 198.51.100.1, 10.9.9.9")
    assert client_ip(scope("10.1.2.3", spoofed), PROXIES) == "198.51.100.1"
    assert client_ip(scope("192.168.1.5", ("x-forwarded-for", "198.51.100.7")), PROXIES) == "198.51.100.7"
    split = scope("fd00::1", ("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "2001:db8::5"))
    assert client_ip(split, PROXIES) == "2001:db8::5"


def test_a_chain_of_only_trusted_hops_falls_back_to_the_peer() -> None:
    assert client_ip(scope("10.1.2.3", ("x-forwarded-for", "10.0.0.7")), PROXIES) == "10.1.2.3"
    assert client_ip(scope("10.1.2.3"), PROXIES) == "10.1.2.3"


def test_bad_trusted_proxy_names_the_key() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_trusted_proxies(["10.0.0.0/8", "not-an-ip"])


@pytest.mark.parametrize(
    ("path", "method", "exempt"),
    [
        ("/health", "GET", True),
        ("/ready", "GET", True),
        ("/metrics", "GET", True),
        ("/schema", "GET", True),
        ("/schema/assets/swagger-ui.css", "GET", True),
        ("/api/v1/projects", "OPTIONS", True),
        ("/api/v1/projects", "GET", False),
        ("/schemas-are-not-docs", "GET", False),
    ],
)
def test_exempt_paths(path: str, method: str, exempt: bool) -> None:
    middleware = RateLimitMiddleware(_app, Settings(rate_limit_per_minute=10))
    assert middleware.exempt({**scope("127.0.0.1", path=path), "method": method}) is exempt


def test_a_handler_can_opt_out() -> None:
    class Handler:
        opt = {"rate_limit": False}  # noqa: RUF012

    middleware = RateLimitMiddleware(_app, Settings(rate_limit_per_minute=10))
    assert middleware.exempt({**scope("127.0.0.1"), "route_handler": Handler()})


def test_headers() -> None:
    allowed = dict(rate_limit_headers(RateDecision(True, 100, 42, 17, 0)))
    assert allowed == {
        b"ratelimit-limit": b"100",
        b"ratelimit-remaining": b"42",
        b"ratelimit-reset": b"17",
        b"ratelimit-policy": b"100;w=60",
    }
    denied = dict(rate_limit_headers(RateDecision(False, 100, 0, 17, 5)))
    assert denied[b"retry-after"] == b"5"
    assert denied[b"ratelimit-reset"] == b"5"
