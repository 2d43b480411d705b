"""The one Settings struct, read once from the environment (and an optional .env file).

Every key is the upper-case name of a field; the chart's ConfigMap and Secret map onto
these keys 1:1 and a test keeps `.env.example`, the chart and this struct in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]

# Keys whose values are credentials: they live only in a Secret, never in a ConfigMap,
# a log line, an error body or a metric label.
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "NEO4J_PASSWORD",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "LLM_API_KEY",
        "MEMSTACK_BOOTSTRAP_API_KEY",
    }
)


# URI schemes under which Neo4j's certificate is verified; NEO4J_TLS_CA_FILE replaces the
# system CAs for them.
NEO4J_VERIFIED_TLS_SCHEMES: frozenset[str] = frozenset({"neo4j+s", "bolt+s"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename="upper", forbid_unknown_fields=True):
    # API
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    api_allowed_origins: tuple[str, ...] = ()
    api_max_body_bytes: Annotated[int, Meta(ge=1024)] = 1_048_576
    rate_limit_per_minute: Annotated[int, Meta(ge=0)] = 600
    trusted_proxies: tuple[str, ...] = ()
    # Neo4j
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"
    neo4j_pool_size: PositiveInt = 50
    # PEM bundle of the CA(s) that verify the server's certificate (neo4j+s:// or bolt+s://).
    neo4j_tls_ca_file: str = ""
    # PostgreSQL
    postgres_host: str = "127.0.0.1"
    postgres_port: Port = 5432
    postgres_db: str = "memstack"
    postgres_user: str = "memstack"
    postgres_password: str = ""
    postgres_pool_size: PositiveInt = 10
    postgres_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    # libpq's sslrootcert: PEM bundle of the CA(s) that verify the server's certificate.
    postgres_sslrootcert: str = ""
    # Redis
    redis_host: str = "127.0.0.1"
    redis_port: Port = 6379
    redis_password: str = ""
    redis_db: Annotated[int, Meta(ge=0, le=15)] = 0
    redis_tls: bool = False
    # PEM bundle of the CA(s) that verify the server's certificate (with REDIS_TLS=true).
    redis_tls_ca_file: str = ""
    # Queue
    queue_max_size: PositiveInt = 100_000
    job_timeout_seconds: PositiveInt = 300
    job_max_retries: Annotated[int, Meta(ge=0, le=20)] = 3
    # The file the worker touches while it makes progress (read by `memstack healthcheck`).
    worker_heartbeat_file: Annotated[str, Meta(min_length=1)] = "/tmp/memstack-worker.heartbeat"  # noqa: S108
    # LLM extractor (optional)
    llm_provider: Literal["none", "openai-compatible"] = "none"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: PositiveFloat = 30.0
    llm_cache_enabled: bool = True
    llm_cache_ttl: PositiveInt = 86_400
    # Observability
    enable_metrics: bool = True
    metrics_port: Port = 9090
    # Address the metrics server binds: loopback for local runs; the chart sets 0.0.0.0.
    metrics_host: str = "127.0.0.1"
    enable_telemetry: bool = False
    otel_exporter_otlp_endpoint: str = ""
    service_name: str = "memstack"
    environment: str = "development"
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Security
    memstack_bootstrap_api_key: str = ""

    def __post_init__(self) -> None:
        if self.llm_provider == "openai-compatible" and not (self.llm_base_url and self.llm_model):
            raise SettingsError("LLM_BASE_URL and LLM_MODEL are required when LLM_PROVIDER=openai-compatible")
        if self.bootstrap_key_too_short:
            raise SettingsError("MEMSTACK_BOOTSTRAP_API_KEY must be at least 32 characters when set")
        if self.enable_telemetry and not self.otel_exporter_otlp_endpoint:
            raise SettingsError("OTEL_EXPORTER_OTLP_ENDPOINT is required when ENABLE_TELEMETRY=true")
        self._check_tls_trust()

    def _check_tls_trust(self) -> None:
        """A CA file only makes sense on a connection that uses TLS: say so instead of ignoring it."""
        if self.postgres_sslrootcert and self.postgres_sslmode == "disable":
            raise SettingsError("POSTGRES_SSLROOTCERT is set but POSTGRES_SSLMODE=disable: use verify-full")
        if self.redis_tls_ca_file and not self.redis_tls:
            raise SettingsError("REDIS_TLS_CA_FILE is set but REDIS_TLS=false: set REDIS_TLS=true")
        scheme = self.neo4j_uri.partition("://")[0]
        if self.neo4j_tls_ca_file and scheme not in NEO4J_VERIFIED_TLS_SCHEMES:
            raise SettingsError(
                f"NEO4J_TLS_CA_FILE is set but NEO4J_URI uses {scheme}://: use neo4j+s:// or bolt+s://"
            )

    @property
    def bootstrap_key_too_short(self) -> bool:
        key = self.memstack_bootstrap_api_key
        return bool(key) and len(key) < 32

    @property
    def postgres_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.postgres_host,
            port=self.postgres_port,
            dbname=self.postgres_db,
            user=self.postgres_user,
            password=self.postgres_password or None,
            sslmode=self.postgres_sslmode,
            sslrootcert=self.postgres_sslrootcert or None,
            application_name=self.service_name,
        )

    def __repr__(self) -> str:  # never print a secret, even by accident
        fields = ", ".join(
            f"{key}={'***' if key in SECRET_KEYS and value else value!r}"
            for key, value in self.as_env_items()
        )
        return f"Settings({fields})"

    __str__ = __repr__

    def as_env_items(self) -> list[tuple[str, object]]:
        return [(name.upper(), getattr(self, name)) for name in self.__struct_fields__]


def setting_keys() -> list[str]:
    """Every environment key the service reads, in declaration order."""
    return [name.upper() for name in Settings.__struct_fields__]


_LIST_KEYS = frozenset({"API_ALLOWED_ORIGINS", "TRUSTED_PROXIES"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _coerce(key: str, raw: str, expected: type | None) -> object:
    if key in _LIST_KEYS:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if expected is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{key}: expected a boolean (true/false), got {raw!r}")
    return raw.strip()


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; blank lines and # comments are ignored, quotes stripped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise SettingsError(f"{path.name}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Build Settings from the environment; the environment wins over the .env file.

    Only known keys are read from the process environment; a .env file with an unknown
    key is rejected, since that is almost always a typo.
    """
    env = os.environ if environ is None else environ
    source: dict[str, str] = {}
    if dotenv is None and environ is None:
        dotenv = Path(env.get("MEMSTACK_ENV_FILE", ".env"))
    if dotenv is not None and dotenv.is_file():
        file_values = read_dotenv(dotenv)
        unknown = sorted(set(file_values) - set(setting_keys()))
        if unknown:
            raise SettingsError(f"{dotenv.name}: unknown setting(s) {', '.join(unknown)}")
        source.update(file_values)
    source.update({key: value for key, value in env.items() if key in _KEYS})
    types = {name.upper(): field_type for name, field_type in _field_types().items()}
    data = {key: _coerce(key, raw, types.get(key)) for key, raw in source.items()}
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def _field_types() -> dict[str, type | None]:
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    result: dict[str, type | None] = {}
    for field in info.fields:
        result[field.name] = bool if isinstance(field.type, msgspec.inspect.BoolType) else None
    return result


def _explain(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `int` >= 1, got `str` - at `$.API_PORT`": lead with the key.
    message = str(exc)
    head, sep, where = message.rpartition(" - at `$.")
    if sep:
        return f"{where.rstrip('`')}: {head}"
    return message


_KEYS = frozenset(setting_keys())
