"""Neo4j: every driver of the service (the API's async one, the worker's synchronous one) and the
idempotent graph schema (constraints and indexes)."""

from __future__ import annotations

from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase, Driver, GraphDatabase, TrustCustomCAs

from service.settings import Settings

# Every statement is idempotent (IF NOT EXISTS), so running them at each start-up is safe.
SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT entity_uid IF NOT EXISTS FOR (e:Entity) REQUIRE e.uid IS UNIQUE",
    "CREATE CONSTRAINT episode_id IF NOT EXISTS FOR (ep:Episode) REQUIRE ep.id IS UNIQUE",
    "CREATE INDEX entity_project IF NOT EXISTS FOR (e:Entity) ON (e.project_id)",
    "CREATE INDEX episode_project IF NOT EXISTS FOR (ep:Episode) ON (ep.project_id)",
    "CREATE INDEX relates_uid IF NOT EXISTS FOR ()-[r:RELATES_TO]-() ON (r.uid)",
    "CREATE INDEX relates_project IF NOT EXISTS FOR ()-[r:RELATES_TO]-() ON (r.project_id)",
    "CREATE FULLTEXT INDEX entity_text IF NOT EXISTS FOR (e:Entity) ON EACH [e.name, e.summary]",
    "CREATE FULLTEXT INDEX fact_text IF NOT EXISTS FOR ()-[r:RELATES_TO]-() ON EACH [r.fact, r.name]",
)


def entity_uid(project_id: str, key: str) -> str:
    """An entity's unique id: its key (`service.memory.extraction.entity_key`) within its project."""
    return f"{project_id}:{key}"


def driver_target(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The URI and connection options every Neo4j driver of the service (async or sync) uses.

    The driver forbids TLS options on the `+s` schemes, so with NEO4J_TLS_CA_FILE the URI
    becomes its plain scheme with `encrypted=True` and that CA as the only trust anchor:
    the certificate and the host name are still verified, against the given CA instead of the
    system store (Settings only accepts the CA with `neo4j+s://` or `bolt+s://`).
    """
    options: dict[str, Any] = {"auth": (settings.neo4j_user, settings.neo4j_password)}
    uri = settings.neo4j_uri
    if settings.neo4j_tls_ca_file:
        scheme, _, rest = uri.partition("://")
        uri = f"{scheme.removesuffix('+s')}://{rest}"
        options["encrypted"] = True
        options["trusted_certificates"] = TrustCustomCAs(settings.neo4j_tls_ca_file)
    return uri, options


def create_driver(settings: Settings) -> AsyncDriver:
    """The API's driver: NEO4J_POOL_SIZE connections, a request waits at most 10 s for one."""
    uri, options = driver_target(settings)
    return AsyncGraphDatabase.driver(
        uri,
        max_connection_pool_size=settings.neo4j_pool_size,
        connection_acquisition_timeout=10.0,
        connection_timeout=5.0,
        **options,
    )


def create_worker_driver(settings: Settings) -> Driver:
    """The worker's driver: a few connections, and write transactions retried for up to 15 s."""
    uri, options = driver_target(settings)
    return GraphDatabase.driver(
        uri, max_connection_pool_size=4, connection_timeout=5.0, max_transaction_retry_time=15.0, **options
    )


async def ensure_graph_schema(driver: AsyncDriver, database: str) -> None:
    for statement in SCHEMA_STATEMENTS:
        await driver.execute_query(statement, database_=database)
