"""The NetworkPolicies follow the configuration: admitted sources follow what is enabled (ingress
controller, Gateway, Prometheus), egress ports come from the configured endpoints, and DNS egress
takes more than a namespace selector (NodeLocal DNSCache, OpenShift)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import Manifest, Rendered, render, render_error
from tests.chart_tools import ENVIRONMENTS, FULLNAME, NAMESPACE

API = f"{FULLNAME}-api"
WORKER = f"{FULLNAME}-worker"
JOBS = f"{FULLNAME}-jobs"
POLICIES = (API, WORKER, JOBS)
OWN_PODS = {
    "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "memstack", "app.kubernetes.io/instance": "rel"}
    }
}
INGRESS_NGINX = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
    "podSelector": {},
}
NAME_LABEL = "kubernetes\\.io/metadata\\.name"  # --set form of kubernetes.io/metadata.name
ROUTE = {"httpRoute.enabled": "true", "httpRoute.parentRefs[0].name": "public-gateway"}


def _namespace_peer(namespace: str) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {},
    }


def _http_sources(rendered: Rendered) -> list[Manifest]:
    (rule,) = [
        r for r in rendered.get("NetworkPolicy", API)["spec"]["ingress"] if r["ports"][0]["port"] == "http"
    ]
    sources: list[Manifest] = rule["from"]
    return sources


def _dependency_ports(rendered: Rendered, policy: str) -> set[int]:
    egress = rendered.get("NetworkPolicy", policy)["spec"]["egress"]
    return {p["port"] for p in egress[1]["ports"]}


def _egress_ports(rendered: Rendered, policy: str) -> set[int]:
    return {
        p["port"] for rule in rendered.get("NetworkPolicy", policy)["spec"]["egress"] for p in rule["ports"]
    }


# --- admitted sources ------------------------------------------------------------------------


def test_http_sources_follow_what_is_enabled(helm: str) -> None:
    assert _http_sources(render(helm)) == [OWN_PODS]
    assert _http_sources(render(helm, sets={"ingress.enabled": "true"})) == [INGRESS_NGINX, OWN_PODS]


@pytest.mark.parametrize(
    ("refs", "namespaces"),
    [
        ({"httpRoute.parentRefs[0].namespace": "gateway"}, ["gateway"]),
        ({}, [NAMESPACE]),  # a parentRef without a namespace is in the route's namespace
        (
            {
                "httpRoute.parentRefs[0].namespace": "public",
                "httpRoute.parentRefs[1].name": "internal-gateway",
                "httpRoute.parentRefs[1].namespace": "internal",
                "httpRoute.parentRefs[2].name": "public-gateway-2",
                "httpRoute.parentRefs[2].namespace": "public",
            },
            ["internal", "public"],
        ),
    ],
)
def test_gateway_namespaces_are_admitted_with_the_route(
    helm: str, refs: dict[str, str], namespaces: list[str]
) -> None:
    sources = _http_sources(render(helm, sets={**ROUTE, **refs}))
    assert sources == [*map(_namespace_peer, namespaces), OWN_PODS]


def test_gateway_proxies_elsewhere_are_admitted_by_selector(helm: str) -> None:
    """E.g. Envoy Gateway runs its proxies in envoy-gateway-system, not in the Gateway's namespace."""
    sets = {
        **ROUTE,
        "httpRoute.parentRefs[0].namespace": "gateway",
        f"networkPolicy.gatewayNamespaceSelector.matchLabels.{NAME_LABEL}": "envoy-gateway-system",
        "networkPolicy.gatewayPodSelector.matchLabels.app\\.kubernetes\\.io/managed-by": "envoy-gateway",
        "ingress.enabled": "true",
    }
    assert _http_sources(render(helm, sets=sets)) == [
        INGRESS_NGINX,
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "envoy-gateway"}},
        },
        OWN_PODS,
    ]


def test_environments_admit_their_ingress_controller(helm: str, env: str) -> None:
    rendered = render(helm, env)
    sources = _http_sources(rendered)
    assert (INGRESS_NGINX in sources) is (env != "default")
    assert sources[-1] == OWN_PODS


def test_metrics_ingress_follows_enable_metrics(helm: str) -> None:
    off = render(
        helm,
        sets={
            "config.enableMetrics": "false",
            "serviceMonitor.enabled": "false",
            "prometheusRule.enabled": "false",
        },
    )
    api_rules = off.get("NetworkPolicy", API)["spec"]["ingress"]
    assert [rule["ports"] for rule in api_rules] == [[{"protocol": "TCP", "port": "http"}]]
    # The worker takes no traffic at all, yet still restricts ingress.
    worker = off.get("NetworkPolicy", WORKER)["spec"]
    assert worker["ingress"] == []
    assert "Ingress" in worker["policyTypes"]


# --- egress ports from the endpoints -----------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "port"),
    [
        ("bolt://neo4j:7687", 7687),
        ("neo4j+s://graph.example.com:7688", 7688),
        ("bolt://neo4j", 7687),
        ("neo4j://10.0.0.5:17687?policy=eu", 17687),
        ("bolt+ssc://[fd00::1]:9000", 9000),
        ("bolt://[fd00::1]", 7687),
        ("neo4j://neo4j/db", 7687),
    ],
)
def test_neo4j_egress_port_is_the_uri_port(helm: str, uri: str, port: int) -> None:
    rendered = render(helm, sets={"neo4j.uri": uri})
    for policy in POLICIES:
        assert _dependency_ports(rendered, policy) == {port, 5432, 6379}, policy


def test_postgresql_and_redis_egress_ports_are_their_ports(helm: str) -> None:
    rendered = render(helm, sets={"postgresql.port": "6432", "redis.port": "6380"})
    for policy in POLICIES:
        assert _dependency_ports(rendered, policy) == {7687, 6432, 6380}, policy
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    assert (config["POSTGRES_PORT"], config["REDIS_PORT"]) == ("6432", "6380")


def test_environments_open_the_ports_they_connect_to(helm: str, env: str) -> None:
    rendered = render(helm, env)
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    uri_port = int(config["NEO4J_URI"].rsplit(":", 1)[1]) if config["NEO4J_URI"].count(":") == 2 else 7687
    expected = {uri_port, int(config["POSTGRES_PORT"]), int(config["REDIS_PORT"])}
    for policy in POLICIES:
        assert _dependency_ports(rendered, policy) == expected


@pytest.mark.parametrize(
    ("endpoint", "port"),
    [
        ("http://otel-collector.observability:4318", 4318),
        ("http://otel-collector:14318/", 14318),
        ("https://otlp.example.com", 443),
        ("https://otlp.example.com/v1/traces", 443),
        ("http://otel-collector", 80),
        ("https://otlp.example.com:8443/otlp", 8443),
    ],
)
def test_otlp_egress_port_is_the_endpoint_port(helm: str, endpoint: str, port: int) -> None:
    rendered = render(
        helm, sets={"config.enableTelemetry": "true", "config.otelExporterOtlpEndpoint": endpoint}
    )
    for policy in POLICIES:
        egress = rendered.get("NetworkPolicy", policy)["spec"]["egress"]
        assert [p["port"] for p in egress[2]["ports"]] == [port], policy


@pytest.mark.parametrize(
    ("base_url", "port"),
    [("https://llm.example.com/v1", 443), ("http://vllm.ai.svc:8000/v1", 8000), ("http://ollama", 80)],
)
def test_llm_egress_port_is_the_base_url_port(helm: str, base_url: str, port: int) -> None:
    sets = {"llm.provider": "openai-compatible", "llm.baseUrl": base_url, "llm.model": "m"}
    egress = render(helm, sets=sets).get("NetworkPolicy", WORKER)["spec"]["egress"]
    assert [p["port"] for p in egress[2]["ports"]] == [port]


@pytest.mark.parametrize("key", ["neo4j.port", "llm.egressPort", "networkPolicy.otlpPort"])
def test_no_port_value_to_keep_in_step_with_an_endpoint(helm: str, key: str) -> None:
    leaf = key.rsplit(".", 1)[1]
    assert f"additional properties '{leaf}' not allowed" in render_error(helm, sets={key: "7687"})


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"neo4j.uri": "bolt://neo4j:70000"}, "neo4j.uri (bolt://neo4j:70000) has port 70000"),
        ({"neo4j.uri": "bolt://neo4j:0"}, "neo4j.uri (bolt://neo4j:0) has port 0"),
        (
            {"config.otelExporterOtlpEndpoint": "http://otel:99999"},
            "config.otelExporterOtlpEndpoint (http://otel:99999) has port 99999",
        ),
    ],
)
def test_endpoint_port_out_of_range_fails_even_without_the_policy(
    helm: str, sets: dict[str, str], message: str
) -> None:
    assert message in render_error(helm, sets={**sets, "networkPolicy.enabled": "false"})


@pytest.mark.parametrize("key", ["config.otelExporterOtlpEndpoint", "llm.baseUrl"])
@pytest.mark.parametrize("url", ["otel-collector:4318", "grpc://otel:4317", "http://", "http:///v1"])
def test_http_endpoints_must_be_http_urls_with_a_host(helm: str, key: str, url: str) -> None:
    assert "/" + key.replace(".", "/") in render_error(helm, sets={key: url})


# --- DNS ----------------------------------------------------------------------------------------


def test_dns_egress_defaults_to_kube_system_port_53(helm: str) -> None:
    dns = render(helm).get("NetworkPolicy", API)["spec"]["egress"][0]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def test_dns_egress_reaches_nodelocal_dnscache(helm: str) -> None:
    sets = {
        "networkPolicy.dnsPodSelector.matchLabels.k8s-app": "kube-dns",
        "networkPolicy.dnsPeers[0].ipBlock.cidr": "169.254.20.10/32",
    }
    rendered = render(helm, sets=sets)
    for policy in POLICIES:
        dns = rendered.get("NetworkPolicy", policy)["spec"]["egress"][0]
        assert dns["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            },
            {"ipBlock": {"cidr": "169.254.20.10/32"}},
        ], policy


def test_dns_egress_on_openshift(helm: str) -> None:
    """OpenShift's DNS pods live in openshift-dns and listen on 5353 behind the Service's 53."""
    sets = {
        "networkPolicy.dnsNamespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": "openshift-dns",
        "networkPolicy.dnsPorts[0]": "53",
        "networkPolicy.dnsPorts[1]": "5353",
    }
    dns = render(helm, sets=sets).get("NetworkPolicy", WORKER)["spec"]["egress"][0]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "openshift-dns"
    }
    assert [(p["protocol"], p["port"]) for p in dns["ports"]] == [
        ("UDP", 53), ("TCP", 53), ("UDP", 5353), ("TCP", 5353)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"networkPolicy.dnsPorts[0]": "0"}, "/networkPolicy/dnsPorts/0"),
        ({"networkPolicy.dnsPorts": "null"}, "missing property 'dnsPorts'"),
        ({"networkPolicy.dnsPeers[0]": "null"}, "/networkPolicy/dnsPeers/0"),
    ],
)
def test_dns_values_are_validated(helm: str, sets: dict[str, str], where: str) -> None:
    assert where in render_error(helm, sets=sets)


def test_every_environment_renders_the_three_policies(helm: str) -> None:
    for env in ENVIRONMENTS:
        rendered = render(helm, env)
        for policy in POLICIES:
            assert rendered.get("NetworkPolicy", policy)["spec"]["egress"][0]["ports"][0]["port"] == 53
