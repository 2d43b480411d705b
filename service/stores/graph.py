"""Neo4j: the async driver and the idempotent graph schema (constraints and indexes)."""

from __future__ import annotations

from neo4j import AsyncDriver, AsyncGraphDatabase

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


def create_driver(settings: Settings) -> AsyncDriver:
    return AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password),
        max_connection_pool_size=settings.neo4j_pool_size,
        connection_acquisition_timeout=10.0,
        connection_timeout=5.0,
    )


async def ensure_graph_schema(driver: AsyncDriver, database: str) -> None:
    for statement in SCHEMA_STATEMENTS:
        await driver.execute_query(statement, database_=database)
