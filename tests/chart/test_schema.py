"""values.schema.json and the cross-field rules reject bad values with a message saying what to change."""

from __future__ import annotations

import json

import pytest

from tests.chart.conftest import render, render_error
from tests.chart_tools import CHART


def test_unknown_key_is_rejected(helm: str) -> None:
    message = render_error(helm, sets={"api.replica": "3"})
    assert "additional properties 'replica' not allowed" in message
    assert "/api" in message


def test_unknown_top_level_key_is_rejected(helm: str) -> None:
    assert "additional properties 'replicaCount' not allowed" in render_error(
        helm, sets={"replicaCount": "3"}
    )


def test_global_is_free_form(helm: str) -> None:
    render(helm, sets={"global.anything.nested": "ok", "global.imageRegistry": "mirror.example.com"})


def test_wrong_type_is_rejected(helm: str) -> None:
    message = render_error(helm, sets={"api.autoscaling.enabled": "yes-please"})
    assert "/api/autoscaling/enabled" in message
    assert "want boolean" in message


def test_enum_is_enforced(helm: str) -> None:
    message = render_error(helm, sets={"config.logFormat": "xml"})
    assert "/config/logFormat" in message


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"api.autoscaling.maxReplicas": "5000"}, "/api/autoscaling/maxReplicas"),
        ({"worker.autoscaling.minReplicas": "0"}, "/worker/autoscaling/minReplicas"),
        (
            {"api.autoscaling.targetCPUUtilizationPercentage": "150"},
            "/api/autoscaling/targetCPUUtilizationPercentage",
        ),
    ],
)
def test_out_of_range_hpa_is_rejected_by_the_schema(helm: str, sets: dict[str, str], where: str) -> None:
    assert where in render_error(helm, sets=sets)


def test_hpa_min_above_max_fails_with_a_fix(helm: str) -> None:
    message = render_error(
        helm, sets={"api.autoscaling.minReplicas": "9", "api.autoscaling.maxReplicas": "4"}
    )
    assert "api.autoscaling.minReplicas (9) is greater than api.autoscaling.maxReplicas (4)" in message
    assert "lower minReplicas or raise maxReplicas" in message


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("neo4j", "password"),
        ("postgresql", "password"),
        ("redis", "password"),
        ("llm", "apiKey"),
        ("bootstrapApiKey", "value"),
    ],
)
def test_existing_secret_and_inline_value_are_exclusive(helm: str, section: str, field: str) -> None:
    value = "x" * 40
    message = render_error(helm, sets={f"{section}.{field}": value, f"{section}.existingSecret": "mine"})
    assert f"{section}.{field} and {section}.existingSecret are both set" in message
    assert f'remove {section}.{field} to use the existing Secret "mine"' in message


def test_inline_password_with_external_secrets_fails(helm: str) -> None:
    message = render_error(
        helm,
        sets={
            "externalSecrets.enabled": "true",
            "externalSecrets.secretStoreRef.name": "vault",
            "externalSecrets.remoteKey": "memstack",
            "postgresql.password": "inline",
        },
    )
    assert "postgresql.password is set while externalSecrets.enabled=true" in message


def test_external_secrets_needs_a_store(helm: str) -> None:
    message = render_error(helm, sets={"externalSecrets.enabled": "true", "externalSecrets.remoteKey": "k"})
    assert "needs externalSecrets.secretStoreRef.name" in message


def test_keda_and_worker_hpa_are_exclusive(helm: str) -> None:
    message = render_error(helm, sets={"worker.keda.enabled": "true"})
    assert "set worker.autoscaling.enabled=false" in message


def test_pdb_min_and_max_are_exclusive(helm: str) -> None:
    message = render_error(helm, sets={"api.pdb.minAvailable": "1"})
    assert "api.pdb: set either minAvailable or maxUnavailable, not both" in message


def test_pdb_blocking_every_drain_fails(helm: str) -> None:
    message = render_error(
        helm,
        sets={
            "worker.autoscaling.enabled": "false",
            "worker.replicas": "1",
            "worker.pdb.maxUnavailable": "null",
            "worker.pdb.minAvailable": "1",
        },
    )
    assert "blocks every node drain" in message
    assert "worker.pdb.maxUnavailable: 1" in message


def test_worker_grace_must_outlast_the_job_timeout(helm: str) -> None:
    message = render_error(helm, sets={"worker.terminationGracePeriodSeconds": "100"})
    assert "must be greater than config.jobTimeoutSeconds (300)" in message


def test_api_grace_must_outlast_the_drain(helm: str) -> None:
    message = render_error(helm, sets={"api.terminationGracePeriodSeconds": "20"})
    assert "api.terminationGracePeriodSeconds (20) must be greater than" in message


def test_llm_provider_needs_url_and_model(helm: str) -> None:
    message = render_error(helm, sets={"llm.provider": "openai-compatible"})
    assert "needs llm.baseUrl and llm.model" in message


def test_short_bootstrap_key_is_rejected(helm: str) -> None:
    assert "/bootstrapApiKey/value" in render_error(helm, sets={"bootstrapApiKey.value": "short"})


def test_httproute_needs_a_parent(helm: str) -> None:
    assert "needs httpRoute.parentRefs" in render_error(helm, sets={"httpRoute.enabled": "true"})


def _walk(schema: dict[str, object], path: str) -> list[str]:
    """Paths of object schemas that accept unknown keys."""
    loose: list[str] = []
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and schema.get("additionalProperties") is not False
    ):
        loose.append(path)
    props = schema.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            if isinstance(sub, dict):
                loose += _walk(sub, f"{path}.{key}")
    return loose


def test_schema_is_strict_everywhere_except_global() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    # global is shared with a parent chart: its known keys are typed, any other key is allowed.
    assert _walk(schema, "") == [".global"]
    assert "additionalProperties" not in schema["properties"]["global"]
    assert schema["properties"]["global"]["properties"]["imageRegistry"]["type"] == "string"


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        ({}, "serviceMonitor.enabled=true"),
        ({"serviceMonitor.enabled": "false"}, "prometheusRule.enabled=true"),
        ({"prometheusRule.enabled": "false"}, "serviceMonitor.enabled=true"),
    ],
)
def test_monitoring_without_metrics_is_rejected(
    helm: str, env: str, sets: dict[str, str], named: str
) -> None:
    """With metrics off no target is ever up: the down alerts would page on a healthy release."""
    message = render_error(helm, env, sets={"config.enableMetrics": "false", **sets})
    assert f"config.enableMetrics=false serves no metrics, but {named}" in message
    assert "MemStackApiDown/MemStackWorkerDown would page on a healthy release" in message
    assert "Set serviceMonitor.enabled=false and prometheusRule.enabled=false too" in message


def test_metrics_off_renders_without_monitoring(helm: str) -> None:
    rendered = render(
        helm,
        sets={
            "config.enableMetrics": "false",
            "serviceMonitor.enabled": "false",
            "prometheusRule.enabled": "false",
        },
    )
    assert not rendered.has("ServiceMonitor")
    assert not rendered.has("PrometheusRule")
    assert rendered.get("ConfigMap", "rel-memstack")["data"]["ENABLE_METRICS"] == "false"
