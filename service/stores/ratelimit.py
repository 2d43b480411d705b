"""Per-client request counters in Redis: a sliding-window counter, one atomic round trip.

Algorithm (the "sliding window counter", as used by several CDNs): each client has one
Redis hash holding the number of the current fixed window (`w`, = now // window), the
requests accepted in it (`c`) and in the window before (`p`). A request arriving a fraction
`f` into the current window sees

    used = p * (1 - f) + c

and is accepted when `used + 1 <= limit`; only accepted requests are counted, so a client
that keeps hammering while throttled is not locked out for longer. This approximates a true
sliding 60-second window (it assumes the previous window's requests were evenly spread)
without storing one entry per request, and unlike a fixed window it never lets a client
burst 2x the limit across a window boundary.

Everything happens in one Lua script, run with EVALSHA (loaded again when a Redis restart
lost it; hits arriving together are sent as one pipeline): the read, the decision
and the write are atomic, so every API process and replica shares one exact count. The
clock is Redis's own `TIME`, so clock skew between pods does not matter. One key per
client, expiring when its state can no longer matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from service.batching import Batcher
from service.settings import Settings
from service.stores.redis import create_async_redis

KEY_PREFIX = "memstack:ratelimit:"
WINDOW_SECONDS = 60
POOL_SIZE = 32
# Hits arriving together go to Redis as one pipeline; this many pipelines at a time, at most
# MAX_PIPELINE hits each.
CONCURRENT_PIPELINES = 4
MAX_PIPELINE = 256

# KEYS[1] = the client's hash; ARGV[1] = limit; ARGV[2] = window in ms;
# ARGV[3] = "peek" to decide without counting (nothing is written).
# Returns {allowed (0|1), remaining, ms until the window rolls over, ms until a retry can succeed}.
_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = math.floor(now / window)
local elapsed = now - win * window
local state = redis.call('HMGET', key, 'w', 'c', 'p')
local w = tonumber(state[1])
local c = tonumber(state[2]) or 0
local p = tonumber(state[3]) or 0
if w == nil or w < win - 1 then
  c = 0
  p = 0
elseif w == win - 1 then
  p = c
  c = 0
end
local weight = (window - elapsed) / window
local used = p * weight + c
local allowed = 0
local retry = 0
if used + 1 <= limit then
  allowed = 1
  c = c + 1
  used = used + 1
elseif c + 1 <= limit then
  -- the previous window's share must decay: p * (window - e) / window + c + 1 <= limit
  retry = math.ceil(window * (1 - (limit - c - 1) / p)) - elapsed
else
  -- wait for the next window, where this window's count becomes the decaying share
  retry = (window - elapsed) + math.ceil(window * (1 - (limit - 1) / c))
end
if retry < 1 and allowed == 0 then
  retry = 1
end
if ARGV[3] ~= 'peek' then
  redis.call('HSET', key, 'w', win, 'c', c, 'p', p)
  redis.call('PEXPIRE', key, 2 * window - elapsed)
end
local remaining = math.floor(limit - used)
if remaining < 0 then
  remaining = 0
end
return {allowed, remaining, window - elapsed, retry}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the current window rolls over (when the count starts to decay)."""
    retry_after_seconds: int
    """Seconds until a request would be accepted again (0 when this one was)."""


def _ceil_seconds(milliseconds: int) -> int:
    return max(0, -(-milliseconds // 1000))


class RateLimiter:
    """Counts requests per client identity against `limit` per minute, shared through Redis."""

    def __init__(self, limit: int, *, window_seconds: int = WINDOW_SECONDS, prefix: str = KEY_PREFIX) -> None:
        if limit < 1:
            raise ValueError("a rate limit must be at least 1 request per window")
        self.limit = limit
        self.window_ms = window_seconds * 1000
        self.prefix = prefix
        self._batchers: dict[int, Batcher[tuple[str, str], list[int]]] = {}

    def key(self, identity: str) -> str:
        return f"{self.prefix}{identity}"

    def _batcher(self, client: aioredis.Redis) -> Batcher[tuple[str, str], list[int]]:
        batcher = self._batchers.get(id(client))
        if batcher is None:
            script = client.register_script(_SCRIPT)
            batcher = Batcher(
                lambda calls: self._run(client, script, calls),
                concurrency=CONCURRENT_PIPELINES,
                max_weight=MAX_PIPELINE,
                name="rate-limit",
            )
            self._batchers = {id(client): batcher}  # one client per process; never grows
        return batcher

    async def _run(
        self, client: aioredis.Redis, script: AsyncScript, calls: list[tuple[str, str]]
    ) -> list[list[int] | Exception]:
        """One pipeline of EVALSHAs (each atomic on its own); the script is loaded again if Redis
        lost it (a restart), and only the calls that found it missing are repeated."""
        results: list[list[int] | Exception | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for i in pending:
                key, mode = calls[i]
                pipe.evalsha(script.sha, 1, key, self.limit, self.window_ms, mode)
            replies = await pipe.execute(raise_on_error=False)
            missing = []
            for i, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(i)
                else:
                    results[i] = reply if isinstance(reply, Exception) else [int(v) for v in reply]
            if not missing:
                break
            await client.script_load(_SCRIPT)
            pending = missing
        return [r if r is not None else NoScriptError("script missing") for r in results]

    async def hit(self, client: aioredis.Redis, identity: str, *, peek: bool = False) -> RateDecision:
        """Count one request by `identity` (with `peek`, only say whether one would be accepted);
        raises redis errors for the caller to handle. Concurrent hits share one pipeline."""
        mode = "peek" if peek else "count"
        allowed, remaining, reset_ms, retry_ms = await self._batcher(client).submit(
            (self.key(identity), mode)
        )
        return RateDecision(
            allowed=bool(allowed),
            limit=self.limit,
            remaining=remaining,
            reset_seconds=_ceil_seconds(reset_ms),
            retry_after_seconds=0 if allowed else max(1, _ceil_seconds(retry_ms)),
        )


def create_limiter_redis(settings: Settings, *, timeout: float = 0.5) -> aioredis.Redis:
    """A small client of the limiter's own, so SSE streams or a burst elsewhere cannot starve it:
    every wait (for a connection, to connect, for an answer) is at most `timeout`."""
    return create_async_redis(
        settings,
        max_connections=POOL_SIZE,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=0,
    )
