"""Targeted assertions for each feature of the chart (SPEC §5, issue 4)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from service.settings import SECRET_KEYS, setting_keys
from tests.chart.conftest import BOOTSTRAP, Manifest, Rendered, containers, pod_spec, render, workloads
from tests.chart.scenarios import FEATURES
from tests.chart_tools import CHART, FULLNAME

API = f"{FULLNAME}-api"
WORKER = f"{FULLNAME}-worker"
NON_SECRET_KEYS = set(setting_keys()) - SECRET_KEYS
# Set in the ConfigMap only when the value they come from is given (a CA bundle per dependency).
OPTIONAL_KEYS = {"NEO4J_TLS_CA_FILE", "POSTGRES_SSLROOTCERT", "REDIS_TLS_CA_FILE"}


def _checksums(rendered: Rendered, deployment: str = API) -> dict[str, str]:
    annotations: dict[str, str] = rendered.get("Deployment", deployment)["spec"]["template"]["metadata"][
        "annotations"
    ]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def _secret_env(doc: Manifest) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for container in containers(doc):
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                out[item["name"]] = ref
    return out


# --- configuration and secrets ---------------------------------------------------------------


def test_configmap_carries_exactly_the_non_secret_settings(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for name in (FULLNAME, f"{FULLNAME}-migrations"):
        data = rendered.get("ConfigMap", name)["data"]
        assert NON_SECRET_KEYS - OPTIONAL_KEYS <= set(data) <= NON_SECRET_KEYS, name
        assert all(isinstance(v, str) for v in data.values())
    # With every optional value given, every non-secret key is there.
    cas = {
        f"{dep}.ca.{f}": v
        for dep in ("neo4j", "postgresql", "redis")
        for f, v in (("secretName", ""), ("configMapName", "ca"))
    }
    tls = {"neo4j.uri": "neo4j+s://db:7687", "postgresql.sslmode": "verify-full", "redis.tls": "true"}
    assert set(render(helm, env, sets={**tls, **cas}).get("ConfigMap", FULLNAME)["data"]) == NON_SECRET_KEYS


def test_pods_read_every_secret_key_from_a_secret(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for name in (API, WORKER):
        assert set(_secret_env(rendered.get("Deployment", name))) == SECRET_KEYS


def test_chart_secret_keys_are_secret_settings(helm: str) -> None:
    rendered = render(helm)
    assert set(rendered.get("Secret", FULLNAME)["data"]) == SECRET_KEYS
    # Every reference points at the chart's Secret and its key of the same name.
    for key, ref in _secret_env(rendered.get("Deployment", API)).items():
        assert ref["name"] == FULLNAME
        assert ref["key"] == key


def test_existing_secrets_replace_chart_secret_keys(helm: str) -> None:
    rendered = render(helm, "prod")
    refs = _secret_env(rendered.get("Deployment", API))
    assert refs["NEO4J_PASSWORD"] == {"name": "memstack-neo4j", "key": "NEO4J_PASSWORD"}
    assert refs["POSTGRES_PASSWORD"]["name"] == "memstack-postgresql"
    assert refs["REDIS_PASSWORD"]["name"] == "memstack-redis"
    assert refs["MEMSTACK_BOOTSTRAP_API_KEY"]["name"] == "memstack-bootstrap"
    # Only the key not delegated stays in the chart's own Secret.
    assert set(rendered.get("Secret", FULLNAME)["data"]) == {"LLM_API_KEY"}
    # The migration hook reads the DB passwords from the same existing Secrets.
    job_refs = _secret_env(rendered.get("Job", f"{FULLNAME}-migrations"))
    assert set(job_refs) == {"NEO4J_PASSWORD", "POSTGRES_PASSWORD"}
    assert job_refs["POSTGRES_PASSWORD"]["name"] == "memstack-postgresql"
    # ... so no empty hook Secret is rendered.
    assert not rendered.has("Secret", f"{FULLNAME}-migrations")


def test_existing_secret_custom_key(helm: str) -> None:
    rendered = render(
        helm, sets={"postgresql.existingSecret": "pg", "postgresql.existingSecretPasswordKey": "password"}
    )
    assert _secret_env(rendered.get("Deployment", WORKER))["POSTGRES_PASSWORD"] == {
        "name": "pg",
        "key": "password",
    }


def test_external_secret_fills_the_chart_secret_name(helm: str) -> None:
    rendered = render(helm, sets=FEATURES)
    assert not rendered.has("Secret")
    external = rendered.get("ExternalSecret", FULLNAME)
    assert external["spec"]["target"]["name"] == FULLNAME
    assert external["spec"]["secretStoreRef"] == {"name": "vault", "kind": "ClusterSecretStore"}
    assert external["spec"]["dataFrom"] == [{"extract": {"key": "memstack/prod"}}]
    refs = _secret_env(rendered.get("Deployment", API))
    assert {ref["name"] for ref in refs.values()} == {FULLNAME}
    # The hook gets its own ExternalSecret, created before the migration Job.
    hook = rendered.get("ExternalSecret", f"{FULLNAME}-migrations")
    assert hook["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"


def test_no_secret_value_outside_secrets(helm: str) -> None:
    secrets = {
        "neo4j.password": "neo4j-SECRET-value-1",
        "postgresql.password": "pg-SECRET-value-2",
        "redis.password": "redis-SECRET-value-3",
        "llm.apiKey": "llm-SECRET-value-4",
        "bootstrapApiKey.value": "bootstrap-SECRET-value-5-0123456789abcdef",
    }
    rendered = render(helm, "dev", sets={**secrets, "neo4j.password": secrets["neo4j.password"]})
    for doc in rendered.docs:
        if doc["kind"] == "Secret":
            continue
        text = json.dumps(doc)
        for value in secrets.values():
            assert value not in text, f"{doc['kind']}/{doc['metadata']['name']} contains a secret value"
            assert base64.b64encode(value.encode()).decode() not in text
    data = rendered.get("Secret", FULLNAME)["data"]
    assert base64.b64decode(data["POSTGRES_PASSWORD"]).decode() == secrets["postgresql.password"]
    assert base64.b64decode(data["MEMSTACK_BOOTSTRAP_API_KEY"]).decode() == secrets["bootstrapApiKey.value"]


def test_bootstrap_key_uses_lookup_and_is_documented() -> None:
    template = (CHART / "templates" / "secret.yaml").read_text(encoding="utf-8")
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in template
    assert template.index("index $existing.data") < template.index("randAlphaNum")


# --- checksums -------------------------------------------------------------------------------


def test_checksum_changes_with_config_and_not_otherwise(helm: str) -> None:
    base = _checksums(render(helm, sets={"bootstrapApiKey.value": BOOTSTRAP}))
    assert set(base) == {"checksum/config", "checksum/secret"}
    # Unrelated values: no roll.
    for sets in ({"api.replicas": "7"}, {"ingress.enabled": "true"}, {"prometheusRule.enabled": "false"}):
        assert _checksums(render(helm, sets={"bootstrapApiKey.value": BOOTSTRAP, **sets})) == base, sets
    # A config value: config checksum only.
    changed = _checksums(render(helm, sets={"bootstrapApiKey.value": BOOTSTRAP, "config.logLevel": "DEBUG"}))
    assert changed["checksum/config"] != base["checksum/config"]
    assert changed["checksum/secret"] == base["checksum/secret"]
    # A secret value: secret checksum only.
    changed = _checksums(render(helm, sets={"bootstrapApiKey.value": BOOTSTRAP, "neo4j.password": "new"}))
    assert changed["checksum/secret"] != base["checksum/secret"]
    assert changed["checksum/config"] == base["checksum/config"]
    # Same for the worker.
    assert _checksums(render(helm, sets={"bootstrapApiKey.value": BOOTSTRAP}), WORKER) == base


def test_checksum_ignores_the_generated_bootstrap_key(helm: str) -> None:
    from tests.chart.conftest import _render

    first = _render.__wrapped__(helm, ())
    second = _render.__wrapped__(helm, ())
    assert _checksums(first) == _checksums(second)


def test_reloader_annotation_for_existing_secrets(helm: str) -> None:
    deployment = render(helm, "prod").get("Deployment", API)
    names = deployment["metadata"]["annotations"]["secret.reloader.stakater.com/reload"].split(",")
    assert set(names) == {"memstack-neo4j", "memstack-postgresql", "memstack-redis", "memstack-bootstrap"}
    assert "annotations" not in render(helm).get("Deployment", API)["metadata"]


# --- workloads -------------------------------------------------------------------------------


def test_probes_point_at_health_and_ready(helm: str, env: str) -> None:
    api = containers(render(helm, env).get("Deployment", API))[0]
    assert api["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert (api["livenessProbe"]["periodSeconds"], api["livenessProbe"]["timeoutSeconds"]) == (10, 5)
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": 8000, "metrics": 9090}


def test_worker_liveness_uses_the_heartbeat(helm: str, env: str) -> None:
    worker = containers(render(helm, env).get("Deployment", WORKER))[0]
    # The file comes from WORKER_HEARTBEAT_FILE, as the worker's (tests/chart/test_process_values.py).
    command = ["memstack", "healthcheck", "--max-age", "90"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert worker[probe]["exec"]["command"] == command
    assert "pgrep" not in json.dumps(worker)
    assert worker["command"] == ["python", "-m", "worker"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]


def test_api_command(helm: str) -> None:
    api = containers(render(helm).get("Deployment", API))[0]
    assert api["command"][:7] == [
        "uvicorn",
        "service.app:create_app",
        "--factory",
        "--host",
        "0.0.0.0",  # noqa: S104 - inside the pod, behind the Service
        "--port",
        "8000",
    ]


def test_replicas_omitted_while_an_hpa_is_on(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for name in (API, WORKER):
        has_hpa = rendered.has("HorizontalPodAutoscaler", name)
        assert ("replicas" in rendered.get("Deployment", name)["spec"]) is not has_hpa
    dev = render(helm, "dev")
    assert dev.get("Deployment", API)["spec"]["replicas"] == 1
    assert not dev.has("HorizontalPodAutoscaler")


def test_hpa_defaults(helm: str) -> None:
    rendered = render(helm)
    api = rendered.get("HorizontalPodAutoscaler", API)["spec"]
    worker = rendered.get("HorizontalPodAutoscaler", WORKER)["spec"]
    assert (api["minReplicas"], api["maxReplicas"]) == (3, 20)
    assert (worker["minReplicas"], worker["maxReplicas"]) == (2, 15)
    for spec in (api, worker):
        targets = {
            m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in spec["metrics"]
        }
        assert targets == {"cpu": 70, "memory": 80}
    assert api["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert api["behavior"]["scaleDown"]["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 60}]
    assert worker["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert worker["behavior"]["scaleDown"]["policies"] == [
        {"type": "Percent", "value": 30, "periodSeconds": 90}
    ]


def test_rolling_update_and_resources(helm: str) -> None:
    rendered = render(helm)
    for name in (API, WORKER):
        deployment = rendered.get("Deployment", name)
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        assert containers(deployment)[0]["resources"] == {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        }


def test_selectors_never_contain_versions(helm: str, env: str) -> None:
    rendered = render(helm, env)
    allowed = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
    for doc in rendered.docs:
        selector = doc.get("spec", {}).get("selector")
        if doc["kind"] in {"Deployment", "PodDisruptionBudget"} or doc["kind"] == "ServiceMonitor":
            selector = selector["matchLabels"]
        elif doc["kind"] != "Service":
            continue
        assert set(selector) <= allowed, f"{doc['kind']}/{doc['metadata']['name']}: {selector}"


def test_selectors_survive_a_chart_version_bump(helm: str) -> None:
    # The rendered selectors do not depend on chart or app version (upgrade/rollback never hits
    # "field is immutable").
    rendered = render(helm)
    for doc in rendered.kinds("Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        for key, value in doc["spec"]["selector"]["matchLabels"].items():
            assert labels[key] == value
            assert "0.1.0" not in value


def test_pdbs(helm: str) -> None:
    rendered = render(helm)
    for name in (API, WORKER):
        spec = rendered.get("PodDisruptionBudget", name)["spec"]
        assert spec["maxUnavailable"] == 1
        assert "minAvailable" not in spec
    assert render(helm, "dev").kinds("PodDisruptionBudget") == []


def test_anti_affinity_and_topology_spread(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for name, component in ((API, "api"), (WORKER, "worker")):
        deployment = rendered.get("Deployment", name)
        spec = pod_spec(deployment)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
        assert term["weight"] == 100
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        for constraint in spec["topologySpreadConstraints"]:
            match = constraint["labelSelector"]["matchLabels"]
            assert match == selector
            assert all(pod_labels[k] == v for k, v in match.items())
    if env == "prod":
        keys = [
            c["topologyKey"] for c in pod_spec(rendered.get("Deployment", API))["topologySpreadConstraints"]
        ]
        assert "topology.kubernetes.io/zone" in keys


def test_pod_security_everywhere(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for doc in workloads(rendered):
        spec = pod_spec(doc)
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == 10001, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], where
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["runAsNonRoot"] is True, where
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where  # noqa: S108
    account = rendered.get("ServiceAccount", FULLNAME)
    assert account["automountServiceAccountToken"] is False


def test_graceful_shutdown(helm: str) -> None:
    rendered = render(helm)
    api = rendered.get("Deployment", API)
    container = containers(api)[0]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert pod_spec(api)["terminationGracePeriodSeconds"] == 60
    command = container["command"]
    assert command[command.index("--timeout-graceful-shutdown") + 1] == "30"
    # uvicorn must not rewrite client addresses: only TRUSTED_PROXIES decides (rate limiter).
    assert "--no-proxy-headers" in command
    assert pod_spec(rendered.get("Deployment", WORKER))["terminationGracePeriodSeconds"] == 360
    longer = render(helm, sets={"config.jobTimeoutSeconds": "900"})
    assert pod_spec(longer.get("Deployment", WORKER))["terminationGracePeriodSeconds"] == 960


def test_image_tag_and_digest(helm: str) -> None:
    image = containers(render(helm).get("Deployment", API))[0]["image"]
    assert image == "memstack/memstack:0.1.0"
    digest = "sha256:" + "a" * 64
    for doc in workloads(render(helm, "prod", sets={"image.digest": digest})):
        for container in pod_spec(doc)["containers"]:
            assert container["image"] == f"memstack/memstack@{digest}"


# --- services, ingress, gateway, network policy ---------------------------------------------


def test_services_select_their_pods(helm: str) -> None:
    rendered = render(helm)
    for name in (API, WORKER):
        service = rendered.get("Service", name)
        labels = rendered.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    api_ports = {p["name"]: p["port"] for p in rendered.get("Service", API)["spec"]["ports"]}
    assert api_ports == {"http": 8000, "metrics": 9090}
    worker_ports = {p["name"]: p["port"] for p in rendered.get("Service", WORKER)["spec"]["ports"]}
    assert worker_ports == {"metrics": 9090}


def test_ingress_is_sse_safe(helm: str, env: str) -> None:
    rendered = render(helm, env)
    if env == "default":
        assert not rendered.has("Ingress")
        rendered = render(helm, sets={"ingress.enabled": "true"})
    ingress = rendered.get("Ingress", API)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-http-version"] == "1.1"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert not any("rewrite-target" in k or "proxy-cache" in k for k in annotations)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/"
    assert path["backend"]["service"] == {"name": API, "port": {"name": "http"}}
    if env in {"staging", "prod"}:
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]


def test_ingress_annotations_can_be_overridden(helm: str) -> None:
    rendered = render(
        helm,
        sets={"ingress.enabled": "true"},
        strings={"ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-read-timeout": "7200"},
    )
    annotations = rendered.get("Ingress", API)["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"


def test_httproute(helm: str) -> None:
    route = render(helm, sets=FEATURES).get("HTTPRoute", API)
    assert route["spec"]["parentRefs"] == [{"name": "public-gateway", "namespace": "gateway"}]
    assert route["spec"]["hostnames"] == ["api.memstack.example.com"]
    rule = route["spec"]["rules"][0]
    assert rule["backendRefs"] == [{"name": API, "port": 8000}]
    assert rule["timeouts"] == {"request": "0s", "backendRequest": "1h"}


def _ports(rule: Manifest) -> set[Any]:
    return {p["port"] for p in rule.get("ports", [])}


def test_network_policy(helm: str) -> None:
    rendered = render(helm)
    api = rendered.get("NetworkPolicy", API)["spec"]
    assert api["policyTypes"] == ["Ingress", "Egress"]
    http_rule, metrics_rule = api["ingress"]
    assert _ports(http_rule) == {"http"}
    # Neither an ingress nor a route is on: only this release's pods (helm test) reach the API.
    assert http_rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "memstack", "app.kubernetes.io/instance": "rel"}
            }
        }
    ]
    assert _ports(metrics_rule) == {"metrics"}
    assert metrics_rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress_ports = [_ports(rule) for rule in api["egress"]]
    assert egress_ports == [{53}, {7687, 5432, 6379}]
    worker = rendered.get("NetworkPolicy", WORKER)["spec"]
    assert [_ports(rule) for rule in worker["ingress"]] == [{"metrics"}]
    assert [_ports(rule) for rule in worker["egress"]] == egress_ports
    # LLM and OTLP egress only when configured.
    featured = render(helm, sets=FEATURES).get("NetworkPolicy", WORKER)["spec"]
    assert [_ports(rule) for rule in featured["egress"]] == [{53, 5353}, {7687, 5432, 6379}, {443}, {4318}]
    assert not render(helm, sets={"networkPolicy.enabled": "false"}).has("NetworkPolicy")


# --- hooks, scaling, monitoring, test pod ------------------------------------------------------


def test_migration_hook(helm: str, env: str) -> None:
    rendered = render(helm, env)
    job = rendered.get("Job", f"{FULLNAME}-migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Succeeded hooks are removed (uninstall leaves nothing); a failed one stays for inspection.
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    # Under Helm's default --timeout (5m), which the documented commands use.
    assert job["spec"]["activeDeadlineSeconds"] == 270
    assert containers(job)[0]["command"] == ["memstack", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # Its config exists before it: lower-weight hooks, removed once the hooks succeed.
    # The release's ServiceAccount only exists after the pre-install hooks: the Job has its own.
    assert pod_spec(job)["serviceAccountName"] == f"{FULLNAME}-migrations"
    assert rendered.has("ServiceAccount", f"{FULLNAME}-migrations")
    for kind in ("ConfigMap", "Secret", "ServiceAccount"):
        if not rendered.has(kind, f"{FULLNAME}-migrations"):
            continue
        hook = rendered.get(kind, f"{FULLNAME}-migrations")["metadata"]["annotations"]
        assert int(hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"]), kind
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"]
    env_from = containers(job)[0]["envFrom"][0]["configMapRef"]["name"]
    assert env_from == f"{FULLNAME}-migrations"


def test_keda_scaled_object(helm: str) -> None:
    rendered = render(helm, sets=FEATURES)
    assert not rendered.has("HorizontalPodAutoscaler", WORKER)
    assert "replicas" not in rendered.get("Deployment", WORKER)["spec"]
    scaled = rendered.get("ScaledObject", WORKER)["spec"]
    assert scaled["scaleTargetRef"]["name"] == WORKER
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 15)
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == "rq:queue:memstack:ingest"
    assert trigger["metadata"]["passwordFromEnv"] == "REDIS_PASSWORD"


def test_service_monitors(helm: str) -> None:
    rendered = render(helm)
    for name in (API, WORKER):
        monitor = rendered.get("ServiceMonitor", name)
        endpoint = monitor["spec"]["endpoints"][0]
        assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("metrics", "/metrics", "30s")
        service = rendered.get("Service", name)
        assert all(
            service["metadata"]["labels"][k] == v
            for k, v in monitor["spec"]["selector"]["matchLabels"].items()
        )
        assert monitor["metadata"]["namespace"] == "memstack"
    # Another namespace, extra labels, relabelings.
    moved = render(helm, sets={**FEATURES, "serviceMonitor.labels.release": "kps"}).get("ServiceMonitor", API)
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["spec"]["namespaceSelector"] == {"matchNames": ["memstack"]}
    assert moved["metadata"]["labels"]["release"] == "kps"
    assert moved["spec"]["endpoints"][0]["relabelings"] == [
        {"action": "labeldrop", "regex": "pod_template_hash"}
    ]
    assert not render(helm, sets={"serviceMonitor.enabled": "false"}).has("ServiceMonitor")


def test_monitoring_renders_without_capabilities(helm: str) -> None:
    # helm template has no cluster: an explicit enabled flag, never a .Capabilities check.
    rendered = render(helm)
    assert rendered.has("ServiceMonitor")
    assert rendered.has("PrometheusRule")
    for path in (CHART / "templates").glob("*.yaml"):
        assert ".Capabilities" not in path.read_text(encoding="utf-8"), path.name


def test_dashboard_configmap(helm: str) -> None:
    rendered = render(helm)
    config_map = rendered.get("ConfigMap", f"{FULLNAME}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["memstack.json"])
    assert dashboard == json.loads(
        (CHART / "files" / "dashboards" / "memstack.json").read_text(encoding="utf-8")
    )
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "sse_connections_active",
        "memstack_queue_size",
        "memstack_queue_max_size",
        "memstack_jobs_total",
        "memstack_dependency_up",
        "container_memory_working_set_bytes",
        "container_cpu_usage_seconds_total",
        "kube_horizontalpodautoscaler_status_current_replicas",
    ):
        assert metric in exprs, metric
    custom = render(helm, sets={"dashboards.label": "dashboards", "dashboards.labelValue": "memstack"})
    labels = custom.get("ConfigMap", f"{FULLNAME}-dashboard")["metadata"]["labels"]
    assert labels["dashboards"] == "memstack"


def test_helm_test_pod(helm: str) -> None:
    pod = render(helm).get("Pod", f"{FULLNAME}-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert f"http://{API}:8000" in script
    assert "/health" in script
    assert "/ready" in script


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_environment_files_only_override_known_keys(env: str) -> None:
    # The schema makes unknown keys fail; this guards the env files against drifting into
    # settings that equal the defaults (noise that hides what really differs).
    import yaml

    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    overrides = yaml.safe_load((CHART.parent / "values" / f"{env}.yaml").read_text(encoding="utf-8"))

    def same(over: Any, base: Any, path: str) -> list[str]:
        if isinstance(over, dict) and isinstance(base, dict):
            return [p for k, v in over.items() for p in same(v, base.get(k), f"{path}.{k}")]
        return [path] if over == base else []

    assert same(overrides, defaults, "") == []


def test_anti_affinity_modes(helm: str) -> None:
    hard = pod_spec(render(helm, sets={"api.podAntiAffinity": "hard"}).get("Deployment", API))
    required = hard["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert required["topologyKey"] == "kubernetes.io/hostname"
    assert required["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    none = pod_spec(render(helm, sets={"worker.podAntiAffinity": "none"}).get("Deployment", WORKER))
    assert "affinity" not in none
    custom = render(helm, sets={"api.affinity.nodeAffinity.x": "y"}).get("Deployment", API)
    assert pod_spec(custom)["affinity"] == {"nodeAffinity": {"x": "y"}}
