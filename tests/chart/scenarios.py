"""Value combinations rendered on top of each values file to reach every optional template."""

from __future__ import annotations

# Everything optional turned on at once (KEDA instead of the worker HPA, Gateway API route,
# ExternalSecret, LLM extractor, telemetry, ingress with TLS, ServiceMonitor elsewhere).
FEATURES: dict[str, str] = {
    "worker.keda.enabled": "true",
    "worker.autoscaling.enabled": "false",
    "httpRoute.enabled": "true",
    "httpRoute.parentRefs[0].name": "public-gateway",
    "httpRoute.parentRefs[0].namespace": "gateway",
    "httpRoute.hostnames[0]": "api.memstack.example.com",
    "httpRoute.timeouts.request": "0s",
    "externalSecrets.enabled": "true",
    "externalSecrets.secretStoreRef.name": "vault",
    "externalSecrets.remoteKey": "memstack/prod",
    "externalSecrets.data[0].secretKey": "LLM_API_KEY",
    "externalSecrets.data[0].remoteRef.key": "memstack/llm",
    "externalSecrets.data[0].remoteRef.property": "api-key",
    "llm.provider": "openai-compatible",
    "llm.baseUrl": "https://llm.example.com/v1",
    "llm.model": "small-model",
    "config.enableTelemetry": "true",
    "config.otelExporterOtlpEndpoint": "http://otel-collector.observability:4318",
    "ingress.enabled": "true",
    "ingress.tls[0].secretName": "memstack-tls",
    "ingress.tls[0].hosts[0]": "memstack.local",
    "serviceMonitor.namespace": "monitoring",
    "serviceMonitor.relabelings[0].action": "labeldrop",
    "serviceMonitor.relabelings[0].regex": "pod_template_hash",
    "api.autoscaling.enabled": "false",
    "api.pdb.maxUnavailable": "null",
    "api.pdb.minAvailable": "2",
    "api.pdb.unhealthyPodEvictionPolicy": "AlwaysAllow",
    "worker.pdb.unhealthyPodEvictionPolicy": "IfHealthyBudget",
    "global.imageRegistry": "mirror.internal",
    "secrets.reloader": "true",
    "networkPolicy.dnsPodSelector.matchLabels.k8s-app": "kube-dns",
    "networkPolicy.dnsPeers[0].ipBlock.cidr": "169.254.20.10/32",
    "networkPolicy.dnsPorts[0]": "53",
    "networkPolicy.dnsPorts[1]": "5353",
    "httpRoute.timeouts.backendRequest": "1h",
}

# (environment, extra --set values) pairs validated against Kubernetes and CRD schemas.
SCENARIOS: list[tuple[str, dict[str, str]]] = [
    ("default", {}),
    ("dev", {}),
    ("staging", {}),
    ("prod", {"image.digest": "sha256:" + "a" * 64}),
    ("default", FEATURES),
]
