"""Start-up validation and migrations, run for real against PostgreSQL and Neo4j."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psycopg
import pytest

from service.settings import Settings
from service.stores.postgres import load_migrations, migrate
from tests.support.processes import ApiLauncher
from tests.support.stack import REPO, local_environ, wait_for


def test_a_bad_setting_stops_migrate_naming_the_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        env=local_environ(POSTGRES_PORT="not-a-port"),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    assert "POSTGRES_PORT" in result.stderr


def test_a_bad_setting_stops_the_api_naming_the_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--port", "0"],
        env=local_environ(LOG_FORMAT="yaml"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


def test_a_bad_setting_stops_the_worker_naming_the_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker"],
        env=local_environ(JOB_MAX_RETRIES="-1"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "JOB_MAX_RETRIES" in result.stderr


@pytest.fixture
def fresh_database(settings: Settings) -> Iterator[Settings]:
    name = f"memstack_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield msgspec.structs.replace(settings, postgres_db=name)
    finally:
        with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def schema_state(settings: Settings) -> tuple[list[tuple[int, str]], list[str]]:
    with psycopg.connect(settings.postgres_conninfo) as conn:
        versions = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
    return [(v, n) for v, n in versions], [t for (t,) in tables]


def test_concurrent_migrations_leave_one_consistent_schema(fresh_database: Settings) -> None:
    async def run_together() -> list[list[int]]:
        return list(await asyncio.gather(*(migrate(fresh_database) for _ in range(4))))

    applied = asyncio.run(run_together())
    expected_versions = [m.version for m in load_migrations()]
    # Exactly one runner applied each migration; the others found nothing to do.
    assert sorted(v for run in applied for v in run) == expected_versions
    versions, tables = schema_state(fresh_database)
    assert [v for v, _ in versions] == expected_versions
    assert {"tenants", "api_keys", "projects", "episodes", "schema_migrations"} <= set(tables)


def test_migrate_command_twice_is_idempotent(fresh_database: Settings) -> None:
    environ = local_environ(POSTGRES_DB=fresh_database.postgres_db)
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=environ, check=True, cwd=REPO)
    versions, _ = schema_state(fresh_database)
    assert [v for v, _ in versions] == [m.version for m in load_migrations()]


def test_ready_accepts_a_newer_schema_and_refuses_an_older_one(
    fresh_database: Settings, tmp_path: Path, running_api: ApiLauncher
) -> None:
    asyncio.run(migrate(fresh_database))
    with psycopg.connect(fresh_database.postgres_conninfo, autocommit=True) as conn:
        # What a later release's migration leaves behind before a `helm rollback` to this one.
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from_a_newer_release')")
        with running_api(tmp_path / "api.log", POSTGRES_DB=fresh_database.postgres_db) as api:
            ready = wait_for(f"{api.base_url}/ready", timeout=30).json()
            assert ready["checks"][0] == {
                "name": "postgres",
                "ok": True,
                "detail": f"schema version 999 (needs >= {len(load_migrations())})",
            }
            conn.execute("DELETE FROM schema_migrations")
            refused = wait_for(f"{api.base_url}/ready", status=503, timeout=30).json()
            postgres = next(c for c in refused["checks"] if c["name"] == "postgres")
            assert "run `memstack migrate`" in postgres["detail"]
