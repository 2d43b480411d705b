"""Values that configure the process reach both ends: the setting the process reads (ConfigMap or
env) and what Kubernetes does with the same value (probe, volume, port, NetworkPolicy).

Issue 12: `worker.heartbeatFile` once moved the probe but not the file the worker writes, and
`ENABLE_TELEMETRY` opened egress the service ignored. The CA bundles of the dependencies are the
same class: a path setting is only right when a volume puts the file there, in every pod.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pytest

from tests.chart.conftest import Manifest, Rendered, containers, pod_spec, render, render_error
from tests.chart_tools import FULLNAME

API = ("Deployment", f"{FULLNAME}-api")
WORKER = ("Deployment", f"{FULLNAME}-worker")
MIGRATIONS = ("Job", f"{FULLNAME}-migrations")
TEST_POD = ("Pod", f"{FULLNAME}-test")
# Every pod the chart runs; all but the test pod connect to the databases through Settings.
PODS = (API, WORKER, MIGRATIONS, TEST_POD)
CONFIGURED_PODS = (API, WORKER, MIGRATIONS)

CA_KEYS = {"neo4j": "NEO4J_TLS_CA_FILE", "postgresql": "POSTGRES_SSLROOTCERT", "redis": "REDIS_TLS_CA_FILE"}
# TLS on for every dependency, so a CA bundle is accepted for each.
TLS = {
    "neo4j.uri": "neo4j+s://neo4j.db.example.com:7687",
    "postgresql.sslmode": "verify-full",
    "redis.tls": "true",
}


def _environment(rendered: Rendered, doc: Manifest) -> dict[str, str]:
    """What the container's process sees: its ConfigMaps (envFrom) overlaid by its plain env."""
    (container,) = containers(doc)
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environ.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
    environ.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return environ


def _mounts(doc: Manifest) -> list[dict[str, Any]]:
    (container,) = containers(doc)
    mounts: list[dict[str, Any]] = container.get("volumeMounts", [])
    return mounts


def _volumes(doc: Manifest) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in pod_spec(doc).get("volumes", [])}


def _mount_holding(doc: Manifest, path: str) -> dict[str, Any]:
    """The volume mount under which `path` lies (the deepest one), or fail naming the path."""
    found = [m for m in _mounts(doc) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert found, f"{doc['kind']}/{doc['metadata']['name']}: nothing is mounted where {path} lies"
    return max(found, key=lambda m: len(m["mountPath"]))


def _ca_sets(source: str) -> dict[str, str]:
    field, other = ("secretName", "configMapName") if source == "secret" else ("configMapName", "secretName")
    given = {f"{dep}.ca.{field}": f"{dep}-ca" for dep in CA_KEYS}
    return {**TLS, **given, **{f"{dep}.ca.{other}": "" for dep in CA_KEYS}, "redis.ca.key": "bundle.pem"}


# --- CA bundles: one per dependency, in every pod -------------------------------------------------


@pytest.mark.parametrize("source", ["secret", "configMap"])
def test_each_ca_is_mounted_read_only_in_every_pod_where_its_setting_points(helm: str, source: str) -> None:
    rendered = render(helm, sets=_ca_sets(source))
    for kind, name in PODS:
        doc = rendered.get(kind, name)
        volumes = _volumes(doc)
        for dep in CA_KEYS:
            path = f"/etc/memstack/ca/{dep}/ca.crt"
            mount = _mount_holding(doc, path)
            assert mount == {"name": f"ca-{dep}", "mountPath": f"/etc/memstack/ca/{dep}", "readOnly": True}
            volume = volumes[mount["name"]]
            key = "bundle.pem" if dep == "redis" else "ca.crt"
            if source == "secret":
                assert volume["secret"] == {
                    "secretName": f"{dep}-ca",
                    "items": [{"key": key, "path": "ca.crt"}],
                }
            else:
                assert volume["configMap"] == {"name": f"{dep}-ca", "items": [{"key": key, "path": "ca.crt"}]}
    # The processes are told where the files are; the test pod checks that each bundle loads.
    for kind, name in CONFIGURED_PODS:
        environ = _environment(rendered, rendered.get(kind, name))
        for dep, key in CA_KEYS.items():
            assert environ[key] == f"/etc/memstack/ca/{dep}/ca.crt", (name, key)
    script = containers(rendered.get(*TEST_POD))[0]["command"][2]
    assert all(f"/etc/memstack/ca/{dep}/ca.crt" in script for dep in CA_KEYS)


def test_no_ca_given_means_no_key_and_no_volume(helm: str, env: str) -> None:
    sets = {f"{dep}.ca.{field}": "" for dep in CA_KEYS for field in ("secretName", "configMapName")}
    rendered = render(helm, env, sets=sets)
    for kind, name in PODS:
        doc = rendered.get(kind, name)
        assert not [v for v in _volumes(doc) if v.startswith("ca-")]
        assert not [m for m in _mounts(doc) if m["name"].startswith("ca-")]
    for kind, name in CONFIGURED_PODS:
        assert not set(CA_KEYS.values()) & set(_environment(rendered, rendered.get(kind, name)))


def test_only_the_dependency_given_a_ca_gets_one(helm: str) -> None:
    rendered = render(helm, sets={"postgresql.sslmode": "verify-full", "postgresql.ca.secretName": "pg-ca"})
    for kind, name in PODS:
        assert [m["name"] for m in _mounts(rendered.get(kind, name)) if m["name"].startswith("ca-")] == [
            "ca-postgresql"
        ]
    environ = _environment(rendered, rendered.get(*MIGRATIONS))
    assert environ["POSTGRES_SSLROOTCERT"] == "/etc/memstack/ca/postgresql/ca.crt"
    assert "NEO4J_TLS_CA_FILE" not in environ
    assert "REDIS_TLS_CA_FILE" not in environ


def test_prod_verifies_every_dependency_against_the_company_ca(helm: str) -> None:
    rendered = render(helm, "prod")
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    assert config["POSTGRES_SSLMODE"] == "verify-full"
    assert config["NEO4J_URI"].startswith("neo4j+s://")
    assert config["REDIS_TLS"] == "true"
    for kind, name in PODS:
        volumes = _volumes(rendered.get(kind, name))
        for dep in CA_KEYS:
            assert volumes[f"ca-{dep}"]["configMap"]["name"] == "memstack-db-ca", (name, dep)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            {"postgresql.ca.secretName": "a", "postgresql.ca.configMapName": "b"},
            "postgresql.ca.secretName and postgresql.ca.configMapName are both set",
        ),
        (
            {"postgresql.sslmode": "disable", "postgresql.ca.secretName": "pg-ca"},
            "postgresql.ca is set but postgresql.sslmode is disable",
        ),
        ({"redis.ca.configMapName": "redis-ca"}, "redis.ca is set but redis.tls is false"),
        (
            {"neo4j.uri": "bolt://neo4j:7687", "neo4j.ca.secretName": "neo4j-ca"},
            "neo4j.ca is set but neo4j.uri (bolt://neo4j:7687) is not neo4j+s:// or bolt+s://",
        ),
        (
            {"config.enableTelemetry": "true"},
            "config.enableTelemetry=true needs config.otelExporterOtlpEndpoint",
        ),
    ],
)
def test_a_value_the_process_would_ignore_fails_the_render(
    helm: str, sets: dict[str, str], message: str
) -> None:
    assert message in render_error(helm, sets=sets)


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"redis.ca.secretname": "x"}, "additional properties 'secretname' not allowed"),
        ({"postgresql.ca.secretName": "Not_A_Name"}, "/postgresql/ca/secretName"),
        ({"neo4j.ca.key": "a/b"}, "/neo4j/ca/key"),
    ],
)
def test_the_schema_checks_the_ca_values(helm: str, sets: dict[str, str], where: str) -> None:
    assert where in render_error(helm, sets=sets)


# --- every value that configures the process agrees with what Kubernetes does with it -------------


@pytest.mark.parametrize("heartbeat", ["/tmp/memstack-worker.heartbeat", "/tmp/hb/worker.alive"])  # noqa: S108
def test_worker_writes_the_heartbeat_its_probes_read(helm: str, heartbeat: str) -> None:
    rendered = render(helm, sets={"worker.heartbeatFile": heartbeat})
    doc = rendered.get(*WORKER)
    (worker,) = containers(doc)
    # The worker and its probes (run in the same container, with the same environment) read one key.
    assert _environment(rendered, doc)["WORKER_HEARTBEAT_FILE"] == heartbeat
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = worker[probe]["exec"]["command"]
        assert command[:2] == ["memstack", "healthcheck"]
        assert "--file" not in command  # a path here could disagree with the setting again
    # ... and the file can be written: it lies on a writable emptyDir (the root filesystem is read-only).
    mount = _mount_holding(doc, heartbeat)
    assert not mount.get("readOnly", False)
    assert "emptyDir" in _volumes(doc)[mount["name"]]
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True


def test_heartbeat_outside_the_writable_volume_is_rejected(helm: str) -> None:
    assert "/worker/heartbeatFile" in render_error(helm, sets={"worker.heartbeatFile": "/var/run/hb"})


def test_every_file_setting_points_into_a_mounted_volume(helm: str, env: str) -> None:
    # Any setting naming a file (heartbeat, CA bundles) must name one a volume provides.
    heartbeat = "/tmp/w/hb"  # noqa: S108 - the pod's emptyDir
    rendered = render(helm, env, sets={"worker.heartbeatFile": heartbeat, **_ca_sets("secret")})
    for kind, name in CONFIGURED_PODS:
        doc = rendered.get(kind, name)
        environ = _environment(rendered, doc)
        files = {k: v for k, v in environ.items() if (k.endswith("_FILE") or k.endswith("SSLROOTCERT")) and v}
        assert set(files) >= {"WORKER_HEARTBEAT_FILE", *CA_KEYS.values()}
        for key, path in files.items():
            assert posixpath.isabs(path), (name, key)
            _mount_holding(doc, path)


@pytest.mark.parametrize("enabled", [True, False])
def test_telemetry_switch_reaches_the_process_and_the_network_policy(helm: str, enabled: bool) -> None:
    sets = {
        "config.enableTelemetry": str(enabled).lower(),
        "config.otelExporterOtlpEndpoint": "http://otel-collector.observability:4318",
    }
    rendered = render(helm, sets=sets)
    for kind, name in (API, WORKER):
        environ = _environment(rendered, rendered.get(kind, name))
        assert environ["ENABLE_TELEMETRY"] == str(enabled).lower()
        assert environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
        policy = rendered.get("NetworkPolicy", name)["spec"]
        egress_ports = {port["port"] for rule in policy["egress"] for port in rule.get("ports", [])}
        assert (4318 in egress_ports) is enabled, name


def test_ports_the_process_binds_are_the_ports_kubernetes_uses(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for kind, name in (API, WORKER):
        doc = rendered.get(kind, name)
        environ = _environment(rendered, doc)
        ports = {p["name"]: p["containerPort"] for p in containers(doc)[0]["ports"]}
        assert ports["metrics"] == int(environ["METRICS_PORT"]), name
    api = rendered.get(*API)
    (container,) = containers(api)
    environ = _environment(rendered, api)
    http = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert http == int(environ["API_PORT"])
    assert container["command"][container["command"].index("--port") + 1] == environ["API_PORT"]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
