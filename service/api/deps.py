"""The names handlers ask for by dependency injection, each explicitly marked (`NamedDependency`).

`service.app.DEPENDENCIES` provides them from the process's Resources; `principal` comes from
`service.api.auth.provide_principal` on every /api route.
"""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from litestar.di import NamedDependency
from psycopg_pool import AsyncConnectionPool

from service.auth.cache import KeyCache
from service.auth.keys import Principal
from service.memory.accept import TenantIntake
from service.memory.erasure import ErasureDeps
from service.observability.metrics import ApiMetrics
from service.readiness import ReadinessDeps
from service.stores.event_hub import EventHub
from service.stores.graph_reads import GraphReader

Caller: TypeAlias = NamedDependency[Principal]  # as `principal`
Pool: TypeAlias = NamedDependency[AsyncConnectionPool]  # as `pool`
Redis: TypeAlias = NamedDependency[aioredis.Redis]  # as `redis`
Metrics: TypeAlias = NamedDependency[ApiMetrics]  # as `metrics`
Events: TypeAlias = NamedDependency[EventHub]  # as `event_hub`
Keys: TypeAlias = NamedDependency[KeyCache]  # as `key_cache`
Intake: TypeAlias = NamedDependency[TenantIntake]  # as `intake`, bound to the caller's tenant
Erasure: TypeAlias = NamedDependency[ErasureDeps]  # as `erasure`
Reader: TypeAlias = NamedDependency[GraphReader]  # as `reader`
Readiness: TypeAlias = NamedDependency[ReadinessDeps]  # as `readiness`
