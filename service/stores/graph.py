"""Neo4j: every driver of the service (the API's async one, the worker's synchronous one) and the
idempotent graph schema (constraints and indexes), with the retirement of the fulltext indexes
of older releases (`ensure_graph_schema`)."""

from __future__ import annotations

from typing import Any, LiteralString

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
    # Search's fulltext indexes also index `project_id`, so a query can require its project inside
    # Lucene (see graph_reads.fulltext_query) instead of filtering every project's hits afterwards.
    "CREATE FULLTEXT INDEX entity_text_v2 IF NOT EXISTS FOR (e:Entity) "
    "ON EACH [e.name, e.summary, e.project_id]",
    "CREATE FULLTEXT INDEX fact_text_v2 IF NOT EXISTS FOR ()-[r:RELATES_TO]-() "
    "ON EACH [r.fact, r.name, r.project_id]",
    # The export's ordering: a project's entities by degree, read in index order.
    "CREATE INDEX entity_project_degree IF NOT EXISTS FOR (e:Entity) ON (e.project_id, e.degree)",
    # A project's entity and fact counts, in a few counter nodes (see graph_writes).
    "CREATE CONSTRAINT graph_totals_key IF NOT EXISTS FOR (t:GraphTotals) REQUIRE t.key IS UNIQUE",
    "CREATE INDEX graph_totals_project IF NOT EXISTS FOR (t:GraphTotals) ON (t.project_id)",
)

# The fulltext indexes search reads, and those of older releases (without `project_id`) that
# they replace. How long `memstack migrate` waits for a new one to be ONLINE.
FULLTEXT_INDEXES: tuple[str, ...] = ("entity_text_v2", "fact_text_v2")
DROP_RETIRED_INDEXES: tuple[LiteralString, ...] = (
    "DROP INDEX entity_text IF EXISTS",
    "DROP INDEX fact_text IF EXISTS",
)
INDEX_ONLINE_TIMEOUT_SECONDS = 900

# Data written before a fact's supporters moved to (:Episode)-[:STATES]->: each fact's
# `episodes` list becomes STATES relationships and a `support` count, and the list goes;
# entities get their `degree`; both are added to their project's totals (shard 0) in the
# transaction that converts them, so each is counted once (an entity without a degree yet
# gets it counted from its facts; one that has it gains the converted fact). Batched
# (auto-commit transactions) and idempotent: a rerun finds nothing left to do, and one
# interrupted midway resumes where it stopped. An id in
# a list whose Episode node no longer exists cannot be deleted through the API any more, so
# it is dropped (it counted for nothing the erasure could reach).
BACKFILL_STATEMENTS: tuple[LiteralString, ...] = (
    """
MATCH ()-[r:RELATES_TO]->() WHERE r.episodes IS NOT NULL
CALL (r) {
  WITH r, startNode(r) AS a
  CALL (r, a) {
    UNWIND r.episodes AS episode_id
    MATCH (ep:Episode {id: episode_id})
    MERGE (ep)-[s:STATES {fact: r.uid}]->(a)
      ON CREATE SET s.project_id = r.project_id, s.fresh = true
    WITH s, s.fresh IS NOT NULL AS fresh
    REMOVE s.fresh
    RETURN count(CASE WHEN fresh THEN 1 END) AS added
  }
  WITH r, added, r.support IS NULL AS uncounted
  SET r.support = coalesce(r.support, 0) + added
  REMOVE r.episodes
  WITH r, startNode(r) AS a, endNode(r) AS b WHERE uncounted
  SET a.degree = a.degree + 1, b.degree = b.degree + 1
  MERGE (t:GraphTotals {key: r.project_id + ':0'})
    ON CREATE SET t.project_id = r.project_id, t.entities = 0, t.facts = 0
  SET t.facts = t.facts + 1
} IN TRANSACTIONS OF 500 ROWS
""",
    """
MATCH (e:Entity) WHERE e.degree IS NULL
CALL (e) {
  SET e.degree = COUNT { (e)-[:RELATES_TO]-() }
  MERGE (t:GraphTotals {key: e.project_id + ':0'})
    ON CREATE SET t.project_id = e.project_id, t.entities = 0, t.facts = 0
  SET t.entities = t.entities + 1
} IN TRANSACTIONS OF 2000 ROWS
""",
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
    """Constraints and indexes, then the backfill of data older than them (`memstack migrate`).

    It returns once the fulltext indexes search reads are ONLINE (a new one is populated from
    the existing graph first). The retired fulltext indexes, which API processes of an older
    release still query, are dropped only by a run that finds the new ones already ONLINE when
    it starts, i.e. the next `memstack migrate` after the one that created them (see
    docs/search.md, "Upgrade and rollback")."""
    replaced = await online_indexes(driver, database) >= set(FULLTEXT_INDEXES)
    for statement in SCHEMA_STATEMENTS:
        await driver.execute_query(statement, database_=database)
    for name in FULLTEXT_INDEXES:
        await driver.execute_query(
            "CALL db.awaitIndex($name, $timeout)",
            name=name,
            timeout=INDEX_ONLINE_TIMEOUT_SECONDS,
            database_=database,
        )
    if replaced:
        for statement in DROP_RETIRED_INDEXES:
            await driver.execute_query(statement, database_=database)
    await backfill_graph(driver, database)


async def online_indexes(driver: AsyncDriver, database: str) -> set[str]:
    """The names of the indexes that are ONLINE."""
    records, _, _ = await driver.execute_query(
        "SHOW INDEXES YIELD name, state WHERE state = 'ONLINE' RETURN name", database_=database
    )
    return {str(record["name"]) for record in records}


async def backfill_graph(driver: AsyncDriver, database: str) -> None:
    # CALL { } IN TRANSACTIONS needs an auto-commit transaction (session.run), not a managed one.
    async with driver.session(database=database) as session:
        for statement in BACKFILL_STATEMENTS:
            await (await session.run(statement)).consume()
