from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from neo4j import TrustCustomCAs
from psycopg.conninfo import conninfo_to_dict

from service.observability.tracing import configure_tracing
from service.settings import SECRET_KEYS, Settings, SettingsError, load_settings, read_dotenv, setting_keys
from service.stores.graph import driver_target
from service.stores.redis import server_options

REPO = Path(__file__).resolve().parents[2]


def test_defaults_load_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.api_port == 8000
    assert settings.metrics_port == 9090
    assert settings.log_format == "json"


def test_values_are_coerced_from_strings() -> None:
    settings = load_settings(
        {
            "API_PORT": "8080",
            "REDIS_TLS": "true",
            "API_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.api_port == 8080
    assert settings.redis_tls is True
    assert settings.api_allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"API_PORT": "eighty"}, "API_PORT"),
        ({"API_PORT": "0"}, "API_PORT"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"REDIS_TLS": "maybe"}, "REDIS_TLS"),
        ({"POSTGRES_SSLMODE": "sometimes"}, "POSTGRES_SSLMODE"),
        ({"LLM_PROVIDER": "openai-compatible"}, "LLM_BASE_URL"),
        ({"MEMSTACK_BOOTSTRAP_API_KEY": "short"}, "MEMSTACK_BOOTSTRAP_API_KEY"),
        ({"ENABLE_TELEMETRY": "true"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"WORKER_HEARTBEAT_FILE": ""}, "WORKER_HEARTBEAT_FILE"),
        # A CA file on a connection without TLS would be ignored silently: rejected instead.
        ({"POSTGRES_SSLROOTCERT": "/ca.pem", "POSTGRES_SSLMODE": "disable"}, "POSTGRES_SSLROOTCERT"),
        ({"REDIS_TLS_CA_FILE": "/ca.pem"}, "REDIS_TLS_CA_FILE"),
        ({"NEO4J_TLS_CA_FILE": "/ca.pem", "NEO4J_URI": "bolt://db:7687"}, "NEO4J_TLS_CA_FILE"),
        ({"NEO4J_TLS_CA_FILE": "/ca.pem", "NEO4J_URI": "neo4j+ssc://db:7687"}, "NEO4J_TLS_CA_FILE"),
    ],
)
def test_a_bad_value_is_rejected_naming_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load_settings(environ)


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.api_port = 1  # type: ignore[misc]


def test_repr_never_shows_a_secret() -> None:
    settings = load_settings({"POSTGRES_PASSWORD": "hunter2-secret", "LLM_API_KEY": "sk-very-secret"})
    assert "hunter2-secret" not in repr(settings)
    assert "sk-very-secret" not in str(settings)
    assert "POSTGRES_PASSWORD='***'" in repr(settings)


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text('# local\nAPI_PORT=9000\nLOG_LEVEL="DEBUG"\n', encoding="utf-8")
    settings = load_settings({"API_PORT": "9100"}, dotenv=dotenv)
    assert settings.api_port == 9100
    assert settings.log_level == "DEBUG"


def test_dotenv_with_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DATABASE_URL=postgres://x\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings({}, dotenv=dotenv)


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = read_dotenv(REPO / ".env.example")
    assert list(example) == setting_keys()
    from_example = load_settings({}, dotenv=REPO / ".env.example")
    assert from_example == Settings()


def test_secret_keys_are_settings() -> None:
    assert set(setting_keys()) >= SECRET_KEYS


def test_every_secret_defaults_to_empty() -> None:
    defaults = msgspec.structs.asdict(Settings())
    assert all(defaults[key.lower()] == "" for key in SECRET_KEYS)


# --- TLS trust and the clients built from it ---------------------------------------------------


def test_postgres_ca_reaches_the_conninfo() -> None:
    settings = load_settings({"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": "/etc/ca/pg.pem"})
    params = conninfo_to_dict(settings.postgres_conninfo)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == "/etc/ca/pg.pem"
    assert "sslrootcert" not in conninfo_to_dict(load_settings({}).postgres_conninfo)


@pytest.mark.parametrize(
    ("uri", "plain"), [("neo4j+s://db:7687", "neo4j://db:7687"), ("bolt+s://db", "bolt://db")]
)
def test_neo4j_ca_turns_the_tls_scheme_into_explicit_options(uri: str, plain: str) -> None:
    # The driver refuses TLS options on +s schemes: the scheme goes, encryption and the CA stay.
    target, options = driver_target(load_settings({"NEO4J_URI": uri, "NEO4J_TLS_CA_FILE": "/ca.pem"}))
    assert target == plain
    assert options["encrypted"] is True
    assert isinstance(options["trusted_certificates"], TrustCustomCAs)
    assert options["trusted_certificates"].certs == ("/ca.pem",)
    # Without a CA the URI is used as given (system CAs for +s).
    assert driver_target(load_settings({"NEO4J_URI": uri}))[0] == uri


def test_redis_tls_options_verify_and_carry_the_ca() -> None:
    plain = server_options(load_settings({}))
    assert not any(key.startswith("ssl") for key in plain)
    tls = server_options(load_settings({"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": "/ca.pem"}))
    assert tls["ssl_ca_certs"] == "/ca.pem"
    assert tls["ssl_cert_reqs"] == "required"
    assert tls["ssl_check_hostname"] is True


def test_telemetry_follows_enable_telemetry_only() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert configure_tracing(load_settings(endpoint)) is None  # an endpoint alone does not export
    provider = configure_tracing(load_settings({**endpoint, "ENABLE_TELEMETRY": "true"}))
    assert provider is not None
    provider.shutdown()
