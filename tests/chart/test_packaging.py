"""How the chart presents itself and what it tells the operator (issue 12, "Also"): Artifact Hub
metadata, the rollback and hook-deadline facts in the docs, the PriorityClass prod relies on, and
the NOTES warnings."""

from __future__ import annotations

import re
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.chart.conftest import containers, render
from tests.chart_tools import CHART, FULLNAME, REPO, VALUES_DIR, tool, values_args

# https://artifacthub.io/docs/topics/annotations/helm/ (the categories Artifact Hub knows).
ARTIFACTHUB_CATEGORIES = {
    "ai-machine-learning", "database", "integration-delivery", "monitoring-logging",
    "networking", "security", "storage", "streaming-messaging",
}  # fmt: skip
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}
HELM_DEFAULT_TIMEOUT = 300
DOCS = (REPO / "docs" / "chart.md").read_text(encoding="utf-8")
README = (CHART / "README.md").read_text(encoding="utf-8")


def _chart() -> dict[str, Any]:
    chart: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    return chart


def _notes(*args: str) -> str:
    # NOTES.txt is skipped by `helm template`; Helm 4's client-side dry run renders it offline.
    proc = subprocess.run(
        [tool("helm4"), "install", "rel", str(CHART), "--dry-run=client", "-n", "memstack", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


# --- Chart.yaml -----------------------------------------------------------------------------------


def test_chart_has_icon_sources_and_home() -> None:
    chart = _chart()
    assert chart["icon"].startswith("https://")
    assert chart["icon"].endswith("/chart/files/icon.svg")
    assert (CHART / "files" / "icon.svg").read_text(encoding="utf-8").startswith("<svg")
    assert chart["sources"] == ["https://github.com/memstack/memstack"]
    assert chart["home"].startswith("https://")


def test_artifacthub_annotations() -> None:
    annotations = _chart()["annotations"]
    # Artifact Hub reads only artifacthub.io/* keys (a bare `category` is ignored there).
    assert all(key.startswith("artifacthub.io/") for key in annotations), annotations
    assert annotations["artifacthub.io/category"] in ARTIFACTHUB_CATEGORIES
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert annotations["artifacthub.io/license"] == pyproject["project"]["license"]
    for flag in ("operator", "prerelease", "containsSecurityUpdates"):
        assert annotations[f"artifacthub.io/{flag}"] in {"true", "false"}
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert links
    assert all(set(link) == {"name", "url"} and link["url"].startswith("https://") for link in links)
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    assert changes
    assert all(change["kind"] in CHANGE_KINDS and change["description"] for change in changes)


def test_artifacthub_images_are_the_rendered_images(helm: str) -> None:
    images = yaml.safe_load(_chart()["annotations"]["artifacthub.io/images"])
    rendered = {c["image"] for doc in render(helm).docs if doc["kind"] in {"Deployment", "Job", "Pod"}
                for c in containers(doc)}  # fmt: skip
    assert {image["image"] for image in images} == rendered
    assert rendered == {f"memstack/memstack:{_chart()['appVersion']}"}


# --- docs -------------------------------------------------------------------------------------------


def test_docs_say_what_helm_rollback_runs() -> None:
    """helm rollback runs only the old revision's pre-/post-rollback hooks, never pre-upgrade."""
    assert not re.search(r"rollback[^.]*runs the old release's pre-upgrade hook", DOCS, re.S)
    section = DOCS.split("## Rollback", 1)[1].split("\n## ", 1)[0]
    assert "`pre-rollback`/`post-rollback` hooks" in section
    assert "does not run" in section
    template = (CHART / "templates" / "migrations-job.yaml").read_text(encoding="utf-8")
    assert "which runs the old\n  release's hooks" not in template
    assert "runs only pre-/post-rollback hooks" in template


@pytest.mark.parametrize("env", ["default", "dev", "staging", "prod"])
def test_hook_deadline_fits_helms_default_timeout(helm: str, env: str) -> None:
    job = render(helm, env).get("Job", f"{FULLNAME}-migrations")
    deadline = job["spec"]["activeDeadlineSeconds"]
    # Room for the weight -10 hook objects and the pod's start before Helm gives up.
    assert deadline <= HELM_DEFAULT_TIMEOUT - 30


def test_docs_say_to_raise_timeout_with_the_deadline() -> None:
    assert "--timeout" in DOCS.split("## Rollback", 1)[0]
    assert "migrations.activeDeadlineSeconds" in DOCS
    assert "`--timeout` of 5m" in README


def _priority_classes() -> set[str]:
    names: set[str] = set()
    for path in VALUES_DIR.glob("*.yaml"):
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for component in ("api", "worker"):
            if name := (values.get(component) or {}).get("priorityClassName"):
                names.add(name)
    return names


def test_priority_classes_the_environments_use_are_documented() -> None:
    names = _priority_classes()
    assert names == {"memstack-critical"}
    for name in names:
        assert f"kubectl create priorityclass {name}" in DOCS
        assert f"kubectl create priorityclass {name}" in README


# --- NOTES ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["latest", "main-latest"])
def test_notes_warn_about_a_mutable_tag(tag: str) -> None:
    notes = _notes("--set", f"image.tag={tag}")
    assert f"WARNING: image memstack/memstack:{tag} uses a mutable tag" in notes


def test_notes_warn_about_an_image_without_a_digest() -> None:
    assert "WARNING: image memstack/memstack:0.1.0 is not pinned by digest" in _notes()
    pinned = _notes(*values_args("prod"), "--set", "image.digest=sha256:" + "a" * 64)
    assert "WARNING: image" not in pinned


def test_notes_warn_where_the_gateway_proxies_are_admitted_from() -> None:
    route = ("--set", "httpRoute.enabled=true", "--set", "httpRoute.parentRefs[0].name=gw")
    notes = _notes(*route, "--set", "httpRoute.parentRefs[0].namespace=gateway")
    assert "the NetworkPolicy admits the Gateway's proxies only from namespace(s) gateway" in notes
    assert "set networkPolicy.gatewayNamespaceSelector" in notes
    chosen = _notes(*route, "--set", "networkPolicy.gatewayNamespaceSelector.matchLabels.x=y")
    assert "Gateway's proxies" not in chosen
    assert "Gateway's proxies" not in _notes(*route, "--set", "networkPolicy.enabled=false")


def test_notes_say_when_nothing_in_front_of_the_api_is_admitted() -> None:
    assert "neither ingress nor httpRoute is enabled" in _notes()
    assert "neither ingress nor httpRoute" not in _notes(*values_args("dev"))


def test_notes_warn_about_a_hook_deadline_beyond_the_default_timeout() -> None:
    notes = _notes("--set", "migrations.activeDeadlineSeconds=600")
    assert "migrations.activeDeadlineSeconds is 600 s, longer than Helm's default --timeout" in notes
    assert "--timeout 11m" in notes
    assert "activeDeadlineSeconds" not in _notes()


def test_notes_warn_about_alerts_without_service_monitors() -> None:
    notes = _notes("--set", "serviceMonitor.enabled=false")
    assert f'the alerts select job="{FULLNAME}-api" and job="{FULLNAME}-worker"' in notes
    assert "rendered without the ServiceMonitors" not in _notes()


def test_notes_name_the_priority_class_to_create() -> None:
    notes = _notes(*values_args("prod"))
    assert 'the api pods use the PriorityClass "memstack-critical", which the chart does not create' in notes
    assert "PriorityClass" not in _notes()
