"""Values operators reach for: required endpoints that must not be blank, the image registry
(`image.registry`, `global.imageRegistry`), and PodDisruptionBudgets that must leave room for a
node drain (with fixed replicas, the HPA or KEDA) plus `unhealthyPodEvictionPolicy`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.chart.conftest import Rendered, RenderError, _render, containers, render, render_error, workloads
from tests.chart_tools import CHART, FULLNAME

API = f"{FULLNAME}-api"
WORKER = f"{FULLNAME}-worker"
DIGEST = "sha256:" + "c" * 64


def _error(helm: str, *args: str) -> str:
    """The error of `helm template` with raw arguments; fails the test when it renders."""
    try:
        _render(helm, args)
    except RenderError as exc:
        return str(exc)
    raise AssertionError(f"rendering with {args} was expected to fail")


def _render_file(helm: str, tmp_path: Path, text: str, *extra: str) -> Rendered | str:
    values = tmp_path / "values.yaml"
    values.write_text(text, encoding="utf-8")
    try:
        return _render(helm, ("-f", str(values), *extra))
    except RenderError as exc:
        return str(exc)


# --- 5. Required endpoints ------------------------------------------------------------------

ENDPOINTS = (("neo4j", "uri"), ("postgresql", "host"), ("redis", "host"))


@pytest.mark.parametrize(("section", "key"), ENDPOINTS)
@pytest.mark.parametrize("blank", ["", "null", "'  '"])
def test_blank_required_endpoint_in_a_values_file_fails(
    helm: str, tmp_path: Path, section: str, key: str, blank: str
) -> None:
    """`key:` (YAML null), `key: ""` and whitespace are all rejected, naming the value."""
    text = f"{section}:\n  {key}: {blank}\n" if blank != "null" else f"{section}:\n  {key}:\n"
    message = _render_file(helm, tmp_path, text)
    assert isinstance(message, str), f"{section}.{key}={blank!r} rendered"
    assert f"/{section}" in message
    assert key in message


@pytest.mark.parametrize(("section", "key"), ENDPOINTS)
@pytest.mark.parametrize("blank", ["", "null"])
def test_blank_required_endpoint_fails_in_the_chart_without_the_schema(
    helm: str, section: str, key: str, blank: str
) -> None:
    """The chart's own validation names the value even when schema validation is skipped."""
    message = _error(helm, "--skip-schema-validation", "--set", f"{section}.{key}={blank}")
    assert f"{section}.{key} is empty: it is required" in message


@pytest.mark.parametrize(
    "uri",
    ["bolt://", "neo4j+s://", "bolt://:7687", "bolt:///db", "http://neo4j:7687", "bolt+x://neo4j", "neo4j"],
)
def test_neo4j_uri_without_a_host_or_with_another_scheme_fails(helm: str, uri: str) -> None:
    message = render_error(helm, sets={"neo4j.uri": uri})
    assert "/neo4j/uri" in message
    message = _error(helm, "--skip-schema-validation", "--set", f"neo4j.uri={uri}")
    assert f"neo4j.uri ({uri}) is not a Neo4j URI with a host" in message


@pytest.mark.parametrize("scheme", ["bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"])
@pytest.mark.parametrize(
    "authority", ["neo4j", "neo4j:7687", "graph.db.svc.cluster.local:7688", "10.0.0.5", "[fd00::1]:7687"]
)
def test_neo4j_uri_accepts_every_scheme_of_the_service(helm: str, scheme: str, authority: str) -> None:
    uri = f"{scheme}://{authority}"
    config = render(helm, sets={"neo4j.uri": uri}).get("ConfigMap", FULLNAME)
    assert config["data"]["NEO4J_URI"] == uri


def test_neo4j_uri_pattern_is_the_same_in_schema_and_chart() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    helpers = (CHART / "templates" / "_validate.tpl").read_text(encoding="utf-8")
    match = re.search(r'define "memstack\.neo4jUriPattern" -}}\n(.*)\n', helpers)
    assert match is not None
    assert schema["properties"]["neo4j"]["properties"]["uri"]["pattern"] == match.group(1)


# --- 6. Image registry ----------------------------------------------------------------------


def _images(rendered: Rendered) -> dict[str, str]:
    """Every container image, by workload kind/name (API, worker, migration Job, test pod)."""
    images: dict[str, str] = {}
    for doc in workloads(rendered):
        for container in containers(doc):
            images[f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"] = container["image"]
    kinds = {key.split("/")[0] for key in images}
    assert kinds == {"Deployment", "Job", "Pod"}, images
    return images


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ({}, "memstack/memstack:0.1.0"),
        ({"image.repository": "localhost/memstack"}, "localhost/memstack:0.1.0"),
        ({"image.repository": "localhost/memstack", "image.tag": "dev"}, "localhost/memstack:dev"),
        ({"image.digest": DIGEST}, f"memstack/memstack@{DIGEST}"),
        ({"image.registry": "registry.example.com"}, "registry.example.com/memstack/memstack:0.1.0"),
        (
            {"image.registry": "registry.example.com:5000/mirror"},
            "registry.example.com:5000/mirror/memstack/memstack:0.1.0",
        ),
        ({"global.imageRegistry": "mirror.internal"}, "mirror.internal/memstack/memstack:0.1.0"),
        (
            {"global.imageRegistry": "mirror.internal", "image.registry": "registry.example.com"},
            "mirror.internal/memstack/memstack:0.1.0",
        ),
        (
            {"global.imageRegistry": "mirror.internal", "image.digest": DIGEST},
            f"mirror.internal/memstack/memstack@{DIGEST}",
        ),
    ],
)
def test_every_image_honours_the_registry(helm: str, sets: dict[str, str], expected: str) -> None:
    images = _images(render(helm, sets=sets))
    assert set(images.values()) == {expected}, images


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_environments_with_a_global_registry(helm: str, env: str) -> None:
    images = _images(render(helm, env, sets={"global.imageRegistry": "mirror.internal"}))
    assert all(image.startswith("mirror.internal/memstack/memstack") for image in images.values()), images


@pytest.mark.parametrize("key", ["image.registry", "global.imageRegistry"])
@pytest.mark.parametrize("registry", ["https://registry.example.com", "registry example", "-bad"])
def test_registry_must_be_a_host(helm: str, key: str, registry: str) -> None:
    assert "/" + key.replace(".", "/") in render_error(helm, sets={key: registry})


# --- 7. PodDisruptionBudgets that block every drain ----------------------------------------


@pytest.mark.parametrize("name", ["api", "worker"])
@pytest.mark.parametrize("min_available", ["2", "3", "100%"])
def test_pdb_min_available_at_the_hpa_minimum_fails(helm: str, name: str, min_available: str) -> None:
    sets = {
        f"{name}.autoscaling.enabled": "true",
        f"{name}.autoscaling.minReplicas": "2",
        f"{name}.pdb.maxUnavailable": "null",
    }
    args = [a for kv in sets.items() for a in ("--set", f"{kv[0]}={kv[1]}")]
    flag = "--set-string" if min_available.endswith("%") else "--set"
    args += [flag, f"{name}.pdb.minAvailable={min_available}"]
    message = _error(helm, *args)
    assert f"{name}.pdb.minAvailable ({min_available}) >= {name}.autoscaling.minReplicas (2)" in message
    assert "blocks every node drain" in message
    assert f"{name}.pdb.maxUnavailable: 1" in message


@pytest.mark.parametrize("name", ["api", "worker"])
def test_pdb_min_available_below_the_hpa_minimum_renders(helm: str, name: str) -> None:
    rendered = render(
        helm,
        sets={
            f"{name}.autoscaling.enabled": "true",
            f"{name}.autoscaling.minReplicas": "3",
            f"{name}.pdb.maxUnavailable": "null",
            f"{name}.pdb.minAvailable": "2",
        },
    )
    spec = rendered.get("PodDisruptionBudget", API if name == "api" else WORKER)["spec"]
    assert spec["minAvailable"] == 2
    assert "maxUnavailable" not in spec


def test_pdb_min_available_at_the_keda_minimum_fails(helm: str) -> None:
    message = render_error(
        helm,
        sets={
            "worker.autoscaling.enabled": "false",
            "worker.keda.enabled": "true",
            "worker.keda.minReplicaCount": "2",
            "worker.pdb.maxUnavailable": "null",
            "worker.pdb.minAvailable": "2",
        },
    )
    assert "worker.pdb.minAvailable (2) >= worker.keda.minReplicaCount (2) blocks every node drain" in message


@pytest.mark.parametrize("name", ["api", "worker"])
@pytest.mark.parametrize("autoscaling", ["true", "false"])
@pytest.mark.parametrize("zero", ["0", "0%"])
def test_pdb_max_unavailable_zero_fails(helm: str, name: str, autoscaling: str, zero: str) -> None:
    args = (
        "--set",
        f"{name}.autoscaling.enabled={autoscaling}",
        "--set-string" if zero.endswith("%") else "--set",
        f"{name}.pdb.maxUnavailable={zero}",
    )
    message = _error(helm, *args)
    assert f"{name}.pdb.maxUnavailable ({zero}) allows no eviction and blocks every node drain" in message


@pytest.mark.parametrize("name", ["api", "worker"])
@pytest.mark.parametrize("policy", ["IfHealthyBudget", "AlwaysAllow"])
def test_pdb_unhealthy_pod_eviction_policy(helm: str, name: str, policy: str) -> None:
    pdb = API if name == "api" else WORKER
    assert "unhealthyPodEvictionPolicy" not in render(helm).get("PodDisruptionBudget", pdb)["spec"]
    spec = render(helm, sets={f"{name}.pdb.unhealthyPodEvictionPolicy": policy}).get(
        "PodDisruptionBudget", pdb
    )["spec"]
    assert spec["unhealthyPodEvictionPolicy"] == policy


def test_pdb_unhealthy_pod_eviction_policy_is_an_enum(helm: str) -> None:
    message = render_error(helm, sets={"worker.pdb.unhealthyPodEvictionPolicy": "Never"})
    assert "/worker/pdb/unhealthyPodEvictionPolicy" in message
