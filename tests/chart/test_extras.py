"""What operators add (issue 12, item 8): env, envFrom, volumes, mounts, init containers and
native sidecars reach every pod the chart runs (API, worker, migration hook, test pod), with a
component's own extras after the shared ones; common labels and annotations on every object;
templated extra objects; the hook's ServiceAccount gets serviceAccount.annotations; topology
spread takes matchLabelKeys, minDomains and the node policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import (
    Manifest,
    Rendered,
    RenderError,
    _render,
    containers,
    pod_spec,
    render,
    render_error,
)
from tests.chart.scenarios import EXTRAS
from tests.chart_tools import FULLNAME

API = ("Deployment", f"{FULLNAME}-api")
WORKER = ("Deployment", f"{FULLNAME}-worker")
HOOK = ("Job", f"{FULLNAME}-migrations")
TEST = ("Pod", f"{FULLNAME}-test")
PODS = (API, WORKER, HOOK, TEST)

SHARED: dict[str, Any] = {
    "extraEnv": [
        {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
        {"name": "RELEASE_OF", "value": "{{ .Release.Name }}"},
    ],
    "extraEnvFrom": [{"secretRef": {"name": "shared-env"}}],
    "extraVolumes": [{"name": "shared", "emptyDir": {}}],
    "extraVolumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    "initContainers": [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}],
    "sidecars": [{"name": "db-proxy", "image": "db-proxy:2"}],
}


def _values(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return str(path)


def _render_values(helm: str, tmp_path: Path, values: dict[str, Any], env: str = "default") -> Rendered:
    args = ["-f", str(Path(__file__).parents[2] / "values" / f"{env}.yaml")] if env != "default" else []
    return _render(helm, (*args, "-f", _values(tmp_path, values)))


def _error_values(helm: str, tmp_path: Path, values: dict[str, Any], *extra: str) -> str:
    try:
        _render(helm, ("-f", _values(tmp_path, values), *extra))
    except RenderError as exc:
        return str(exc)
    raise AssertionError(f"rendering {values} was expected to fail")


def _main(doc: Manifest) -> Manifest:
    main: Manifest = containers(doc)[0]
    return main


def _env(doc: Manifest) -> list[tuple[str, Any]]:
    return [(e["name"], e.get("value", e.get("valueFrom"))) for e in _main(doc).get("env", [])]


def _init(doc: Manifest) -> list[tuple[str, str | None]]:
    return [(c["name"], c.get("restartPolicy")) for c in pod_spec(doc).get("initContainers", [])]


# --- every pod takes the shared extras ----------------------------------------------------------


def test_every_pod_takes_the_shared_extras(helm: str, env: str, tmp_path: Path) -> None:
    rendered = _render_values(helm, tmp_path, SHARED, env)
    for kind, name in PODS:
        doc = rendered.get(kind, name)
        where = f"{kind}/{name}"
        env_vars = dict(_env(doc))
        assert env_vars["HTTPS_PROXY"] == "http://proxy.internal:3128", where
        assert env_vars["RELEASE_OF"] == "rel", where  # rendered with tpl
        assert {"secretRef": {"name": "shared-env"}} in _main(doc)["envFrom"], where
        assert {"name": "shared", "emptyDir": {}} in pod_spec(doc)["volumes"], where
        assert {"name": "shared", "mountPath": "/shared"} in _main(doc)["volumeMounts"], where
        assert _init(doc) == [("db-proxy", "Always"), ("wait", None)], where


def test_defaults_add_nothing(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for kind, name in PODS:
        doc = rendered.get(kind, name)
        assert "initContainers" not in pod_spec(doc)
        assert {v["name"] for v in pod_spec(doc)["volumes"]} <= {
            "tmp",
            "ca-neo4j",
            "ca-postgresql",
            "ca-redis",
        }


def test_chart_env_and_envfrom_come_first(helm: str, tmp_path: Path) -> None:
    rendered = _render_values(helm, tmp_path, SHARED)
    api = _main(rendered.get(*API))
    assert api["envFrom"][0] == {"configMapRef": {"name": FULLNAME}}
    assert [e["name"] for e in api["env"]][:5] == [
        "NEO4J_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "LLM_API_KEY", "MEMSTACK_BOOTSTRAP_API_KEY"
    ]  # fmt: skip
    assert _main(rendered.get(*HOOK))["envFrom"][0] == {"configMapRef": {"name": f"{FULLNAME}-migrations"}}
    # The test pod reads no ConfigMap: only the extras.
    assert _main(rendered.get(*TEST))["envFrom"] == [{"secretRef": {"name": "shared-env"}}]


# --- a component's own extras -----------------------------------------------------------------


@pytest.mark.parametrize(("component", "pod"), [("api", API), ("worker", WORKER), ("migrations", HOOK)])
def test_component_extras_reach_only_their_pod(
    helm: str, tmp_path: Path, component: str, pod: tuple[str, str]
) -> None:
    own = {
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": f"http://{component}-proxy:3128"},
            {"name": "ONLY", "value": "1"},
        ],
        "extraEnvFrom": [{"configMapRef": {"name": f"{component}-env"}}],
        "extraVolumes": [{"name": f"{component}-data", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": f"{component}-data", "mountPath": f"/{component}"}],
        "initContainers": [{"name": f"{component}-init", "image": "busybox:1.36"}],
        "sidecars": [{"name": f"{component}-sidecar", "image": "agent:1"}],
    }
    rendered = _render_values(helm, tmp_path, {**SHARED, component: own})
    for other in PODS:
        doc = rendered.get(*other)
        env_vars = dict(_env(doc))
        mine = other == pod
        assert ("ONLY" in env_vars) is mine, other
        # The component's entry replaces the shared one of the same name, in place, once.
        assert env_vars["HTTPS_PROXY"] == (
            f"http://{component}-proxy:3128" if mine else "http://proxy.internal:3128"
        )
        assert [n for n, _ in _env(doc)].count("HTTPS_PROXY") == 1
        assert ({"configMapRef": {"name": f"{component}-env"}} in _main(doc)["envFrom"]) is mine
        assert (f"{component}-data" in {v["name"] for v in pod_spec(doc)["volumes"]}) is mine
        assert (f"/{component}" in {m["mountPath"] for m in _main(doc)["volumeMounts"]}) is mine
        expected = (
            [
                ("db-proxy", "Always"),
                (f"{component}-sidecar", "Always"),
                ("wait", None),
                (f"{component}-init", None),
            ]
            if mine
            else [("db-proxy", "Always"), ("wait", None)]
        )
        assert _init(doc) == expected, other


def test_extra_env_replaces_a_variable_the_chart_sets(helm: str, tmp_path: Path) -> None:
    """E.g. the PostgreSQL password from a Secret the operator's tooling writes; never twice
    (server-side apply refuses duplicate names)."""
    ref = {"secretKeyRef": {"name": "rotated-pg", "key": "password"}}
    rendered = _render_values(helm, tmp_path, {"extraEnv": [{"name": "POSTGRES_PASSWORD", "valueFrom": ref}]})
    for pod in PODS:
        names = [n for n, _ in _env(rendered.get(*pod))]
        assert len(names) == len(set(names)), pod
        if pod != TEST:
            assert dict(_env(rendered.get(*pod)))["POSTGRES_PASSWORD"] == ref, pod


def test_worker_and_migrations_extra_env_reach_their_pods(helm: str) -> None:
    """The old chart had api/worker.extraEnv only; the migration hook now takes its own."""
    rendered = render(
        helm, sets={"migrations.extraEnv[0].name": "HOOK"}, strings={"migrations.extraEnv[0].value": "1"}
    )
    assert ("HOOK", "1") in _env(rendered.get(*HOOK))
    assert ("HOOK", "1") not in _env(rendered.get(*API))


# --- validation -----------------------------------------------------------------------------------


def _volume(name: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {}}


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "x:1"}


TWICE: list[tuple[dict[str, Any], str]] = [
    ({"extraVolumes": [_volume("tmp")]}, 'extraVolumes of the api pod: a volume named "tmp" exists already'),
    (
        {
            "postgresql": {"sslmode": "verify-full", "ca": {"configMapName": "ca"}},
            "worker": {"extraVolumes": [_volume("ca-postgresql")]},
        },
        'extraVolumes of the worker pod: a volume named "ca-postgresql" exists already',
    ),
    (
        {"extraVolumes": [_volume("a")], "migrations": {"extraVolumes": [_volume("a")]}},
        'extraVolumes of the migration hook pod: a volume named "a" exists already',
    ),
    (
        {"extraVolumeMounts": [{"name": "x", "mountPath": "/tmp"}]},  # noqa: S108 - the chart's own mount
        "extraVolumeMounts of the api pod: /tmp is mounted twice",
    ),
    (
        {"api": {"sidecars": [_container("api")]}},
        'sidecars of the api pod: a container named "api" exists already',
    ),
    (
        {"initContainers": [_container("w")], "sidecars": [_container("w")]},
        'initContainers of the api pod: a container named "w" exists already',
    ),
]


@pytest.mark.parametrize(("values", "message"), TWICE)
def test_names_and_paths_used_twice_fail(
    helm: str, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    assert message in _error_values(helm, tmp_path, values)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"sidecars": [{"name": "no-image"}]}, "/sidecars/0"),
        ({"initContainers": [{"name": "Bad_Name", "image": "x"}]}, "/initContainers/0/name"),
        ({"extraVolumeMounts": [{"name": "x", "mountPath": "relative"}]}, "/extraVolumeMounts/0/mountPath"),
        ({"extraVolumeMounts": [{"name": "x"}]}, "/extraVolumeMounts/0"),
        ({"extraEnv": [{"value": "nameless"}]}, "/extraEnv/0"),
        ({"api": {"extraEnv": [{"name": "N", "value": 1}]}}, "/api/extraEnv/0/value"),
        ({"worker": {"extraEnvFrom": [{"secret": {"name": "typo"}}]}}, "/worker/extraEnvFrom/0"),
        ({"migrations": {"extraVolumes": [{"emptyDir": {}}]}}, "/migrations/extraVolumes/0"),
        ({"extraObjects": [{"metadata": {"name": "kindless"}}]}, "/extraObjects/0"),
        ({"commonAnnotations": {"a": 1}}, "/commonAnnotations/a"),
    ],
)
def test_extras_are_validated_by_the_schema(
    helm: str, tmp_path: Path, values: dict[str, Any], where: str
) -> None:
    assert where in _error_values(helm, tmp_path, values)


@pytest.mark.parametrize("key", ["helm.sh/hook", "helm.sh/hook-weight"])
def test_common_annotations_cannot_make_every_object_a_hook(helm: str, tmp_path: Path, key: str) -> None:
    message = _error_values(helm, tmp_path, {"commonAnnotations": {key: "keep"}})
    assert f"commonAnnotations.{key}: helm.sh/hook* annotations would make every object a hook" in message


# --- objects ------------------------------------------------------------------------------------


def test_common_labels_and_annotations_on_every_object(helm: str, env: str, tmp_path: Path) -> None:
    values = {
        "commonLabels": {"cost-center": "ai"},
        "commonAnnotations": {"team": "memory", "owner": "{{ .Release.Name }}-owners", "note": "common"},
        "api": {"service": {"annotations": {"note": "own"}}},
    }
    rendered = _render_values(helm, tmp_path, values, env)
    for doc in rendered.docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert doc["metadata"]["labels"]["cost-center"] == "ai", where
        annotations = doc["metadata"]["annotations"]
        assert annotations["team"] == "memory", where
        assert annotations["owner"] == "rel-owners", where  # rendered with tpl
        # An object's own annotations win.
        assert annotations["note"] == (
            "own" if (doc["kind"], doc["metadata"]["name"]) == ("Service", API[1]) else "common"
        )
        if doc["kind"] in {"Job", "Pod"}:
            assert annotations["helm.sh/hook"] in {"pre-install,pre-upgrade", "test"}, where
    for pod in PODS:
        doc = rendered.get(*pod)
        labels = doc["metadata"]["labels"] if pod == TEST else doc["spec"]["template"]["metadata"]["labels"]
        assert labels["cost-center"] == "ai"
        if pod[0] == "Deployment":  # selectors never change
            assert "cost-center" not in doc["spec"]["selector"]["matchLabels"]


def test_extra_objects_are_templated(helm: str, tmp_path: Path) -> None:
    values = {
        "extraObjects": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": '{{ include "memstack.fullname" . }}-extra'},
                "data": {"namespace": "{{ .Release.Namespace }}"},
            },
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}-robot\n",
        ]
    }  # fmt: skip
    rendered = _render_values(helm, tmp_path, values)
    assert rendered.get("ConfigMap", f"{FULLNAME}-extra")["data"] == {"namespace": "memstack"}
    assert rendered.has("ServiceAccount", "rel-robot")
    assert not render(helm).has("ConfigMap", f"{FULLNAME}-extra")


def test_hook_service_account_gets_the_service_account_annotations(helm: str) -> None:
    """Workload identity (GKE, EKS IRSA, Azure) must apply to the migration hook as well."""
    key = "eks.amazonaws.com/role-arn"
    escaped = key.replace(".", "\\.")
    rendered = render(helm, sets={f"serviceAccount.annotations.{escaped}": "arn:aws:iam::1:role/m"})
    for name in (FULLNAME, f"{FULLNAME}-migrations"):
        annotations = rendered.get("ServiceAccount", name)["metadata"]["annotations"]
        assert annotations[key] == "arn:aws:iam::1:role/m", name
    hook = rendered.get("ServiceAccount", f"{FULLNAME}-migrations")["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"


# --- topology spread ----------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["api", "worker"])
def test_topology_spread_takes_match_label_keys_and_min_domains(helm: str, component: str) -> None:
    prefix = f"{component}.topologySpreadConstraints[0]"
    sets = {
        f"{prefix}.maxSkew": "1",
        f"{prefix}.topologyKey": "topology.kubernetes.io/zone",
        f"{prefix}.whenUnsatisfiable": "DoNotSchedule",
        f"{prefix}.minDomains": "3",
        f"{prefix}.matchLabelKeys[0]": "pod-template-hash",
        f"{prefix}.nodeAffinityPolicy": "Honor",
        f"{prefix}.nodeTaintsPolicy": "Ignore",
    }
    name = API if component == "api" else WORKER
    (constraint,) = pod_spec(render(helm, sets=sets).get(*name))["topologySpreadConstraints"]
    assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    assert constraint["minDomains"] == 3
    assert (constraint["nodeAffinityPolicy"], constraint["nodeTaintsPolicy"]) == ("Honor", "Ignore")
    assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component


def test_min_domains_needs_do_not_schedule(helm: str) -> None:
    prefix = "api.topologySpreadConstraints[0]"
    sets = {
        f"{prefix}.maxSkew": "1",
        f"{prefix}.topologyKey": "zone",
        f"{prefix}.whenUnsatisfiable": "ScheduleAnyway",
    }
    message = render_error(helm, sets={**sets, f"{prefix}.minDomains": "2"})
    assert "api.topologySpreadConstraints[0].minDomains needs whenUnsatisfiable: DoNotSchedule" in message


def test_match_label_keys_must_not_repeat_the_selector(helm: str) -> None:
    prefix = "worker.topologySpreadConstraints[0]"
    sets = {
        f"{prefix}.maxSkew": "1",
        f"{prefix}.topologyKey": "zone",
        f"{prefix}.whenUnsatisfiable": "ScheduleAnyway",
    }
    message = render_error(helm, sets={**sets, f"{prefix}.matchLabelKeys[0]": "app.kubernetes.io/instance"})
    assert "worker.topologySpreadConstraints[0].matchLabelKeys has app.kubernetes.io/instance" in message


@pytest.mark.parametrize(
    ("key", "value"), [("nodeAffinityPolicy", "Always"), ("nodeTaintsPolicy", "honor"), ("minDomains", "0")]
)
def test_topology_spread_options_are_validated(helm: str, key: str, value: str) -> None:
    prefix = "api.topologySpreadConstraints[0]"
    sets = {
        f"{prefix}.maxSkew": "1",
        f"{prefix}.topologyKey": "zone",
        f"{prefix}.whenUnsatisfiable": "DoNotSchedule",
    }
    where = f"/api/topologySpreadConstraints/0/{key}"
    assert where in render_error(helm, sets={**sets, f"{prefix}.{key}": value})


def test_extras_scenario_renders_every_extra(helm: str) -> None:
    """The scenario validated against the Kubernetes schemas (test_validate) really uses them."""
    rendered = render(helm, "prod", sets={"image.digest": "sha256:" + "a" * 64, **EXTRAS})
    for pod in PODS:
        assert _init(rendered.get(*pod))[0] == ("db-proxy", "Always"), pod
    assert rendered.has("ConfigMap", "memstack-extra")
