"""helm lint --strict, helm template and deterministic rendering, per values file and Helm version."""

from __future__ import annotations

import base64
import re
import subprocess

import yaml

from tests.chart.conftest import BOOTSTRAP, _render, render
from tests.chart_tools import CHART, FULLNAME, tool, values_args


def test_lint_strict(helm: str, env: str) -> None:
    proc = subprocess.run(
        [tool(helm), "lint", "--strict", str(CHART), *values_args(env)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_template_renders_core_objects(helm: str, env: str) -> None:
    rendered = render(helm, env)
    for kind, name in [
        ("ConfigMap", FULLNAME),
        ("ServiceAccount", FULLNAME),
        ("Deployment", f"{FULLNAME}-api"),
        ("Deployment", f"{FULLNAME}-worker"),
        ("Service", f"{FULLNAME}-api"),
        ("Service", f"{FULLNAME}-worker"),
        ("Job", f"{FULLNAME}-migrations"),
        ("ServiceMonitor", f"{FULLNAME}-api"),
        ("ServiceMonitor", f"{FULLNAME}-worker"),
        ("PrometheusRule", FULLNAME),
        ("ConfigMap", f"{FULLNAME}-dashboard"),
        ("NetworkPolicy", f"{FULLNAME}-api"),
        ("Pod", f"{FULLNAME}-test"),
    ]:
        assert rendered.has(kind, name), f"{kind}/{name} missing for {env} on {helm}"


def _without_generated_key(text: str) -> str:
    return re.sub(
        r'MEMSTACK_BOOTSTRAP_API_KEY: "?[A-Za-z0-9+/=]+"?', "MEMSTACK_BOOTSTRAP_API_KEY: <generated>", text
    )


def test_rendering_is_deterministic(helm: str, env: str) -> None:
    # Bypass the render cache: two real helm runs.
    first = _render.__wrapped__(helm, tuple(values_args(env)))
    second = _render.__wrapped__(helm, tuple(values_args(env)))
    # Only a bootstrap key generated at first install may differ (helm template has no lookup);
    # everything else, including the pods' checksum annotations, is identical.
    assert _without_generated_key(first.text) == _without_generated_key(second.text)


def test_rendering_is_byte_identical_with_a_given_bootstrap_key(helm: str) -> None:
    args = ("--set", f"bootstrapApiKey.value={BOOTSTRAP}")
    assert _render.__wrapped__(helm, args).text == _render.__wrapped__(helm, args).text


def test_generated_bootstrap_key_is_long_and_random(helm: str) -> None:
    secret = render(helm).get("Secret", FULLNAME)
    key = base64.b64decode(secret["data"]["MEMSTACK_BOOTSTRAP_API_KEY"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", key)


def test_helm3_and_helm4_render_the_same_objects(env: str) -> None:
    # Compared as objects: Helm 4 separates documents with different blank lines.
    def normalized(helm: str) -> list[object]:
        return [yaml.safe_load(_without_generated_key(yaml.safe_dump(doc))) for doc in render(helm, env).docs]

    assert normalized("helm3") == normalized("helm4")


def test_notes_render(env: str) -> None:
    # NOTES.txt is skipped by `helm template`; Helm 4's client-side dry run renders it offline.
    proc = subprocess.run(
        [
            tool("helm4"),
            "install",
            "rel",
            str(CHART),
            "--dry-run=client",
            "-n",
            "memstack",
            *values_args(env),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "maxmemory-policy noeviction" in notes
    assert "helm test rel -n memstack" in notes
    assert "helm rollback rel" in notes
    # Empty database passwords without an existing Secret are called out.
    assert ("WARNING: postgresql.password is empty" in notes) is (env == "default")
    if env in {"staging", "prod"}:
        assert 'from the existing Secret "memstack-bootstrap"' in notes
    else:
        assert "bootstrapApiKey.existingSecret instead" in notes
