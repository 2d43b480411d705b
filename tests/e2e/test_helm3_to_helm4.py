"""Issue 7, scenario 4: a release installed by Helm 3 is upgraded and rolled back by Helm 4
with server-side apply, without field-manager conflicts and without touching the replicas
an autoscaler chose.

The autoscaler's decision is played by a scale-subresource write under its own field manager
(the HPA controller writes the same way; without a metrics API it leaves replicas within
[min, max] alone), to a count the chart never renders, so a chart that renders `replicas`
while an HPA is on fails here (conflict, or replicas reset).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e import checks
from tests.e2e.checks import DEPLOYMENT, Release
from tests.e2e.kube import RELEASE, Cluster

AUTOSCALER_MANAGER = "e2e-autoscaler"
HPA_SETTLE_SECONDS = 12


@pytest.fixture(scope="class", params=["dev", "prod"], ids=["dev-helm3-to-helm4", "prod-helm3-to-helm4"])
def rel(request: pytest.FixtureRequest) -> Release:
    return Release(values=str(request.param), helm=4, namespace=f"e2e-{request.param}-helm3to4")


def assert_replicas_kept(cluster: Cluster, rel: Release) -> None:
    rendered = {str(d["metadata"]["name"]): d for d in checks.of_kind(rel.rendered, "Deployment")}
    for name, d in rendered.items():
        live = cluster.must_get(DEPLOYMENT, name, rel.namespace)
        if name in rel.scaled:
            assert "replicas" not in d["spec"], f"{name}: the chart renders replicas while an HPA is on"
            assert live["spec"]["replicas"] == rel.scaled[name], (
                f"{name}: autoscaled replicas {rel.scaled[name]} changed to {live['spec']['replicas']}"
            )
        else:
            assert live["spec"]["replicas"] == d["spec"]["replicas"], (
                f"{name}: replicas differ from the chart"
            )


def assert_helm_applies_without_replicas(cluster: Cluster, rel: Release) -> None:
    """After Helm 4's server-side apply, Helm owns the Deployment through an Apply entry that
    does not claim spec.replicas of an autoscaled Deployment; the autoscaler still owns it."""
    for name in rel.scaled:
        live = cluster.must_get(DEPLOYMENT, name, rel.namespace, managed_fields=True)
        entries = live["metadata"].get("managedFields") or []
        applies = [
            e for e in entries if e.get("operation") == "Apply" and "helm" in str(e.get("manager", ""))
        ]
        assert applies, (
            f"{name}: no server-side Apply by Helm in managedFields: {[e.get('manager') for e in entries]}"
        )
        for e in applies:
            spec = (e.get("fieldsV1") or {}).get("f:spec") or {}
            assert "f:replicas" not in spec, f"{name}: Helm's apply claims spec.replicas"
        owners = [
            e for e in entries if "f:replicas" in json.dumps((e.get("fieldsV1") or {}).get("f:spec") or {})
        ]
        assert any(e.get("manager") == AUTOSCALER_MANAGER for e in owners), (
            f"{name}: the autoscaler lost ownership of spec.replicas: {[e.get('manager') for e in owners]}"
        )


class TestHelm3ToHelm4:
    def test_1_helm3_install(self, cluster: Cluster, rel: Release) -> None:
        checks.install(cluster, rel, helm=3)
        rel.done.add("install")

    def test_2_autoscaler_scales(self, cluster: Cluster, rel: Release) -> None:
        rel.require("install")
        mins = checks.hpa_min_by_target(rel.rendered)
        for name, low in mins.items():
            target = low + 1
            cluster.kubectl_run(
                "-n",
                rel.namespace,
                "patch",
                DEPLOYMENT,
                name,
                "--subresource=scale",
                "--type=merge",
                "-p",
                json.dumps({"spec": {"replicas": target}}),
                f"--field-manager={AUTOSCALER_MANAGER}",
            )
            rel.scaled[name] = target
        checks.wait_deployments_ready(cluster, rel)
        # The HPA controller (sync period 5 s in ci/e2e/cluster.sh) keeps a count within
        # [min, max] when it has no metrics: the value is stable before Helm 4 touches it.
        time.sleep(HPA_SETTLE_SECONDS)
        assert_replicas_kept(cluster, rel)
        rel.done.add("scaled")

    def test_3_helm4_server_side_upgrade(self, cluster: Cluster, rel: Release) -> None:
        rel.require("scaled")
        checks.upgrade_config(cluster, rel, revision=2, helm=4, extra=["--server-side=true"])
        assert_replicas_kept(cluster, rel)
        assert_helm_applies_without_replicas(cluster, rel)
        rel.done.add("upgrade")

    def test_4_helm4_rollback_to_helm3_revision(self, cluster: Cluster, rel: Release) -> None:
        rel.require("upgrade")
        res = cluster.helm(
            4,
            "rollback",
            RELEASE,
            "1",
            "-n",
            rel.namespace,
            "--server-side=true",
            "--wait=watcher",
            "--timeout",
            checks.TIMEOUT,
        )
        assert "conflict" not in (res.stdout + res.stderr).lower(), res.describe()
        assert checks.history_statuses(cluster, rel)[-1] == (3, "deployed")
        deps = checks.wait_deployments_ready(cluster, rel)
        for name, d in deps.items():
            assert d["spec"]["template"] == rel.templates[1][name], (
                f"{name}: template differs from revision 1"
            )
        checks.snapshot(cluster, rel, 3)
        assert rel.configs[3] == rel.configs[1], "config after rollback differs from revision 1"
        assert_replicas_kept(cluster, rel)
        rel.done.add("rollback")

    def test_5_helm4_uninstall(self, cluster: Cluster, rel: Release) -> None:
        rel.require("install")
        checks.uninstall(cluster, rel, helm=4)
