"""Rendered objects against real schemas: Kubernetes (kubernetes-validate --strict) and the CRDs
of the operators whose custom resources the chart renders (fetched by ci/crds.sh)."""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CRDS_DIR, HELMS, Manifest, render
from tests.chart.scenarios import SCENARIOS
from tests.chart_tools import tool

KUBERNETES_VERSIONS = ("1.30.0", "1.33.0", "1.37.0")
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "HTTPRoute", "ScaledObject", "ExternalSecret"}
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
    "HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml",
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "ExternalSecret": "external-secrets.io_externalsecrets.yaml",
}


def _all_docs() -> Iterator[tuple[str, Manifest]]:
    for helm in HELMS:
        for index, (env, sets) in enumerate(SCENARIOS):
            for doc in render(helm, env, sets=sets).docs:
                yield f"{helm}/{env}#{index}", doc


@pytest.fixture(scope="module")
def core_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One multi-document file per scenario and Helm version, without custom resources."""
    out = tmp_path_factory.mktemp("core")
    files: list[Path] = []
    for helm in HELMS:
        for index, (env, sets) in enumerate(SCENARIOS):
            docs = [d for d in render(helm, env, sets=sets).docs if d["kind"] not in CUSTOM_KINDS]
            path = out / f"{helm}-{env}-{index}.yaml"
            path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
            files.append(path)
    return files


def _kubernetes_validate(version: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    cmd = [tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def test_core_objects_pass_kubernetes_validate_strict(core_files: list[Path]) -> None:
    # One call per Kubernetes version, all files batched, the versions in parallel.
    with ThreadPoolExecutor(max_workers=len(KUBERNETES_VERSIONS)) as pool:
        results = dict(
            zip(
                KUBERNETES_VERSIONS,
                pool.map(lambda v: _kubernetes_validate(v, core_files), KUBERNETES_VERSIONS),
                strict=True,
            )
        )
    failures = {v: r.stdout + r.stderr for v, r in results.items() if r.returncode != 0}
    assert not failures, failures
    for version, result in results.items():
        output = result.stdout + result.stderr
        assert "ERROR" not in output, f"{version}: {output}"
        assert "WARN" not in output, f"{version}: {output}"
        expected = sum(len(list(yaml.safe_load_all(f.read_text(encoding="utf-8")))) for f in core_files)
        assert output.count(" passed for resource ") == expected, output


def test_every_custom_kind_is_rendered_somewhere() -> None:
    kinds = {doc["kind"] for _, doc in _all_docs()}
    assert kinds >= CUSTOM_KINDS


# --- CRD schemas ---------------------------------------------------------------------------


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version of every CRD."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, name in CRD_FILES.items():
        path = CRDS_DIR / name
        assert path.is_file(), f"{path} missing: run ci/crds.sh"
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            assert crd["spec"]["names"]["kind"] == kind
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _unknown_fields(obj: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Fields the API server would silently prune (not in `properties`, no preserve-unknown)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(obj, dict) and "properties" in schema:
        props: dict[str, Any] = schema["properties"]
        for key, value in obj.items():
            if key in props:
                yield from _unknown_fields(value, props[key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                yield f"{path}.{key}"
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in obj.items():
            yield from _unknown_fields(value, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


def test_custom_resources_match_their_crd_schemas() -> None:
    jsonschema: Any = importlib.import_module("jsonschema")
    schemas = _crd_schemas()
    checked: set[str] = set()
    problems: list[str] = []
    for where, doc in _all_docs():
        if doc["kind"] not in CUSTOM_KINDS:
            continue
        key = (doc["apiVersion"], doc["kind"])
        assert key in schemas, f"{where}: no served CRD version for {key}; have {sorted(schemas)}"
        schema = schemas[key]
        validator = jsonschema.Draft7Validator(schema)
        label = f"{where} {doc['kind']}/{doc['metadata']['name']}"
        for error in validator.iter_errors(doc):
            problems.append(f"{label}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
        for field in _unknown_fields(doc, schema, ""):
            if not field.startswith(".metadata."):
                problems.append(f"{label}: unknown field {field} (the API server would prune it)")
        checked.add(doc["kind"])
    assert not problems, "\n".join(problems)
    assert checked == CUSTOM_KINDS


def test_crd_validation_catches_a_broken_object() -> None:
    jsonschema: Any = importlib.import_module("jsonschema")
    schema = _crd_schemas()[("monitoring.coreos.com/v1", "ServiceMonitor")]
    broken = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": 9090, "scheme": "gopher"}], "bogus": 1},
    }
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert errors, "a ServiceMonitor with a numeric port name and an unknown scheme must be rejected"
    assert list(_unknown_fields(broken, schema, "")) == [".spec.bogus"]
