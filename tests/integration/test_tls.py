"""Verified TLS to PostgreSQL and Redis with a private CA, against real servers (issue 12).

A throwaway CA signs a server certificate for 127.0.0.1; a second PostgreSQL and a second Redis
(started by ci/postgres.sh and ci/redis.sh with their TLS variables, in a state directory of
their own, on free loopback ports) serve it. With the CA in POSTGRES_SSLROOTCERT /
REDIS_TLS_CA_FILE the service's clients connect, and the whole pipeline runs over them; without
it, with another CA, or under a host name the certificate does not carry, they refuse with the
reason and no secret. Neo4j's TLS is covered by unit tests of the driver options only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from service.settings import Settings, load_settings
from service.stores.postgres import create_pool
from service.stores.ratelimit import create_limiter_redis
from service.stores.redis import create_async_redis, create_sync_redis
from tests.support.client import Client
from tests.support.processes import ApiLauncher, WorkerLauncher
from tests.support.stack import REPO, free_port, local_environ, wait_for


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *(
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN=MemStack test {name}",
        ),
        *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=directory,
    )


def _make_pki(directory: Path) -> Pki:
    """A CA, a server certificate it signs for IP 127.0.0.1 only, and an unrelated CA."""
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _openssl(
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"),
        cwd=directory,
    )
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        encoding="utf-8",
    )
    _openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-out", "server.crt", "-days", "2", "-extfile", "server.ext"),
        cwd=directory,
    )
    return Pki(
        directory / "ca.crt", directory / "other-ca.crt", directory / "server.crt", directory / "server.key"
    )


@dataclass(frozen=True)
class Server:
    port: int
    environ: dict[str, str]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: PostgreSQL runs as its own user and must reach its state directory.
    path = Path(tempfile.mkdtemp(prefix="memstack-tls-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(workdir: Path) -> Pki:
    directory = workdir / "pki"
    directory.mkdir()
    return _make_pki(directory)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _script_server(name: str, state: Path, environ: dict[str, str]) -> Iterator[None]:
    """ci/<name>.sh start ... stop, in its own state directory; the PID is killed if it outlives stop."""
    script = str(REPO / "ci" / f"{name}.sh")
    environ = {**environ, "MEMSTACK_STATE_DIR": str(state)}
    pidfile = state / f"{name}.pid"
    pid: int | None = None
    try:
        subprocess.run(["bash", script, "start"], env=environ, check=True, capture_output=True, timeout=120)
        pid = int(pidfile.read_text(encoding="utf-8").split()[0])
        yield
    finally:
        subprocess.run(["bash", script, "stop"], env=environ, check=False, capture_output=True, timeout=90)
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def tls_postgres(workdir: Path, pki: Pki) -> Iterator[Server]:
    port = free_port()
    environ = local_environ(
        POSTGRES_PORT=str(port), POSTGRES_TLS_CERT_FILE=str(pki.cert), POSTGRES_TLS_KEY_FILE=str(pki.key)
    )
    with _script_server("postgres", workdir / "postgres-state", environ):
        yield Server(port, environ)


@pytest.fixture(scope="module")
def tls_redis(workdir: Path, pki: Pki) -> Iterator[Server]:
    port = free_port()
    environ = local_environ(
        REDIS_PORT=str(port), REDIS_TLS_CERT_FILE=str(pki.cert), REDIS_TLS_KEY_FILE=str(pki.key)
    )
    with _script_server("redis", workdir / "redis-state", environ):
        yield Server(port, environ)


def _postgres_overrides(server: Server, ca: Path | None, host: str = "127.0.0.1") -> dict[str, str]:
    overrides = {"POSTGRES_HOST": host, "POSTGRES_PORT": str(server.port), "POSTGRES_SSLMODE": "verify-full"}
    if ca is not None:
        overrides["POSTGRES_SSLROOTCERT"] = str(ca)
    return overrides


def _redis_overrides(server: Server, ca: Path | None, host: str = "127.0.0.1") -> dict[str, str]:
    overrides = {"REDIS_HOST": host, "REDIS_PORT": str(server.port), "REDIS_TLS": "true"}
    if ca is not None:
        overrides["REDIS_TLS_CA_FILE"] = str(ca)
    return overrides


def _settings(**overrides: str) -> Settings:
    return load_settings(local_environ(**overrides), dotenv=None)


# Each way to get trust wrong, and what the client says about it. HOME points at an empty
# directory, so libpq finds no ~/.postgresql/root.crt of the machine's either.
REFUSALS = {
    "no CA": (None, "127.0.0.1"),
    "another CA": ("other", "127.0.0.1"),
    "a name the certificate lacks": ("ca", "localhost"),
}
POSTGRES_REASONS = {
    "no CA": "root certificate file",
    "another CA": "certificate verify failed",
    "a name the certificate lacks": 'does not match host name "localhost"',
}
REDIS_REASONS = {
    "no CA": "certificate verify failed",
    "another CA": "certificate verify failed",
    "a name the certificate lacks": "Hostname mismatch",
}


def _ca(pki: Pki, which: str | None) -> Path | None:
    return {None: None, "ca": pki.ca, "other": pki.other_ca}[which]


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_postgres_pool_connects_verify_full_with_the_ca(tls_postgres: Server, pki: Pki) -> None:
    settings = _settings(**_postgres_overrides(tls_postgres, pki.ca))

    async def check() -> tuple[bool, str]:
        pool = create_pool(settings)
        await pool.open(wait=True, timeout=15)
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                )
                row = await cursor.fetchone()
        finally:
            await pool.close()
        assert row is not None
        return bool(row[0]), str(row[1])

    ssl_on, version = asyncio.run(check())
    assert ssl_on
    assert version.startswith("TLSv1.")


@pytest.mark.parametrize("case", list(REFUSALS))
def test_postgres_refuses_without_the_right_trust_saying_why(
    tls_postgres: Server, pki: Pki, workdir: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    which, host = REFUSALS[case]
    overrides = _postgres_overrides(tls_postgres, _ca(pki, which), host)
    home = workdir / "empty-home"
    home.mkdir(exist_ok=True)
    environ = local_environ(**overrides, HOME=str(home), LOG_FORMAT="text")
    # The migration hook's command: exits non-zero with libpq's reason, and no secret.
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "migrate failed: PostgreSQL" in output
    assert POSTGRES_REASONS[case] in output
    assert "Traceback" not in output
    assert environ["POSTGRES_PASSWORD"] not in output
    # The service's pool never opens, and says why in its log (the API's /ready stays 503).
    settings = load_settings(environ, dotenv=None)

    async def attempt() -> None:
        pool = create_pool(settings)
        try:
            await pool.open(wait=True, timeout=3)
        finally:
            await pool.close()

    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)  # libpq reads it in this process
    try:
        with caplog.at_level(logging.WARNING, logger="psycopg.pool"), pytest.raises(Exception, match="pool"):
            asyncio.run(attempt())
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert POSTGRES_REASONS[case] in logged
    assert environ["POSTGRES_PASSWORD"] not in logged


# --- Redis ----------------------------------------------------------------------------------------


def test_redis_clients_connect_over_verified_tls_with_the_ca(tls_redis: Server, pki: Pki) -> None:
    settings = _settings(**_redis_overrides(tls_redis, pki.ca))
    sync_client = create_sync_redis(settings)
    try:
        assert sync_client.ping() is True
        assert sync_client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(pki.ca)
    finally:
        sync_client.close()

    async def async_clients() -> None:
        for client in (create_async_redis(settings), create_limiter_redis(settings, timeout=3)):
            try:
                assert await client.ping() is True
            finally:
                await client.aclose()

    asyncio.run(async_clients())
    # The server speaks only TLS on that port: a plain client gets nowhere.
    plain = create_sync_redis(_settings(REDIS_HOST="127.0.0.1", REDIS_PORT=str(tls_redis.port)))
    try:
        with pytest.raises(redis.ConnectionError):
            plain.ping()
    finally:
        plain.close()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_redis_refuses_without_the_right_trust_saying_why(tls_redis: Server, pki: Pki, case: str) -> None:
    which, host = REFUSALS[case]
    settings = _settings(**_redis_overrides(tls_redis, _ca(pki, which), host))
    client = create_sync_redis(settings)
    try:
        with pytest.raises(redis.ConnectionError) as raised:
            client.ping()
    finally:
        client.close()
    assert REDIS_REASONS[case] in str(raised.value)
    assert settings.redis_password not in str(raised.value)

    async def async_attempt() -> None:
        aclient = create_async_redis(settings)
        try:
            await aclient.ping()
        finally:
            await aclient.aclose()

    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        asyncio.run(async_attempt())


# --- the whole service over TLS -------------------------------------------------------------------


def test_migrate_api_and_worker_run_over_verified_tls(
    tls_postgres: Server,
    tls_redis: Server,
    pki: Pki,
    tmp_path: Path,
    settings: Settings,
    running_api: ApiLauncher,
    running_worker: WorkerLauncher,
) -> None:
    overrides = {**_postgres_overrides(tls_postgres, pki.ca), **_redis_overrides(tls_redis, pki.ca)}
    migrated = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        env=local_environ(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with running_api(tmp_path / "api.log", **overrides) as api:
        ready = wait_for(f"{api.base_url}/ready", timeout=30).json()
        assert {check["name"] for check in ready["checks"] if check["ok"]} == {"postgres", "redis", "neo4j"}
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        assert client.post_episode(project, "Alice Smith works at Acme Corp in Berlin.").status_code == 202
        with running_worker(tmp_path / "worker.log", **overrides):
            client.wait_all(project, "completed", 1, timeout=60)
        assert httpx.get(f"{api.base_url}/health").status_code == 200
