"""The `memstack` command: serve, worker, migrate, healthcheck, keys, ingest."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from service.cli_ingest import add_ingest_parser
from service.cli_keys import add_keys_parser
from service.settings import Settings, SettingsError, load_settings


async def _migrate(settings: Settings) -> None:
    from service.stores.graph import create_driver, ensure_graph_schema
    from service.stores.postgres import migrate

    applied = await migrate(settings)
    logger.info("postgres: applied migrations {applied}", applied=applied or "none (up to date)")
    driver = create_driver(settings)
    try:
        await ensure_graph_schema(driver, settings.neo4j_database)
    finally:
        await driver.close()
    logger.info("neo4j: constraints and indexes in place")


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    import psycopg
    from neo4j.exceptions import DriverError, Neo4jError

    try:
        asyncio.run(_migrate(settings))
    except psycopg.OperationalError as exc:
        # The migration hook's log is where an operator looks: the reason, without a traceback
        # (libpq's messages name the server and the TLS problem, never the password).
        logger.error("migrate failed: PostgreSQL: {error}", error=" ".join(str(exc).split()))
        return 1
    except (DriverError, Neo4jError) as exc:
        logger.error("migrate failed: Neo4j: {error}", error=" ".join(str(exc).split()))
        return 1
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        reload=args.reload,
        proxy_headers=False,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    return 0


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    from worker.main import run_worker

    return run_worker(settings)


def cmd_healthcheck(_: Settings | None, args: argparse.Namespace) -> int:
    """Exit 0 when the worker's heartbeat file is fresh; the worker's liveness probe.

    The file is the one the worker writes: WORKER_HEARTBEAT_FILE from the same environment
    (the probe runs in the worker's container), unless --file names another.
    """
    path: Path | None = args.file
    if path is None:
        try:
            path = Path(load_settings().worker_heartbeat_file)
        except SettingsError as exc:
            print(f"memstack healthcheck: invalid configuration: {exc}", file=sys.stderr)
            return 2
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"no heartbeat at {path}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"heartbeat is {age:.0f}s old (max {args.max_age}s)", file=sys.stderr)
        return 1
    print(f"heartbeat {age:.0f}s old")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memstack", description="MemStack service commands")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API with uvicorn")
    serve.add_argument("--reload", action="store_true", help="reload on code changes (development)")
    serve.set_defaults(handler=cmd_serve)
    sub.add_parser("worker", help="run the ingest worker").set_defaults(handler=cmd_worker)
    sub.add_parser("migrate", help="apply SQL migrations and Neo4j constraints").set_defaults(
        handler=cmd_migrate
    )
    health = sub.add_parser("healthcheck", help="check the worker heartbeat (liveness probe)")
    health.add_argument("--file", type=Path, default=None, help="default: WORKER_HEARTBEAT_FILE")
    health.add_argument("--max-age", type=float, default=90.0, help="seconds")
    health.set_defaults(handler=cmd_healthcheck, needs_settings=False)
    add_keys_parser(sub)
    add_ingest_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings: Settings | None = None
    if getattr(args, "needs_settings", True):
        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"memstack: invalid configuration: {exc}", file=sys.stderr)
            return 2
        from service.observability.logging import configure_logging

        configure_logging(settings)
    result: int = args.handler(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
