"""What the domain refuses, in its own terms; `service/api/errors.py` turns each into problem+json.

- `NotFound`: no such object for this tenant (404).
- `Busy`: a worker is processing it right now (409, with Retry-After).
- `Unavailable`: a dependency failed or was too slow and nothing was committed (503, with
  Retry-After).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

RETRY_AFTER_SECONDS = 5
"""How long a client waits before retrying anything refused as temporary (Retry-After)."""
GRAPH_TIMEOUT_SECONDS = 10.0
GRAPH_OUTAGES = (ServiceUnavailable, SessionExpired, TransientError)
"""Neo4j errors that mean "unavailable right now" rather than "wrong"."""


class DomainError(Exception):
    """A refusal with a message fit for the client; `retry_after` says when to try again."""

    retry_after: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """No such object for this tenant (another tenant's objects are not found either)."""


class Busy(DomainError):
    """A worker is processing it right now; retry shortly."""

    retry_after = RETRY_AFTER_SECONDS


class Unavailable(DomainError):
    """A dependency failed or was too slow; nothing was committed, so retry later."""

    retry_after = RETRY_AFTER_SECONDS


@asynccontextmanager
async def graph_errors() -> AsyncIterator[None]:
    """A Neo4j outage (or a read past GRAPH_TIMEOUT_SECONDS, driver retries included) is `Unavailable`."""
    try:
        async with asyncio.timeout(GRAPH_TIMEOUT_SECONDS):
            yield
    except (TimeoutError, *GRAPH_OUTAGES) as exc:
        logger.warning("graph unavailable: {error}", error=type(exc).__name__)
        raise Unavailable("The graph database is unavailable; retry later") from None
