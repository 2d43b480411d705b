"""Install, config upgrade, broken upgrade + rollback and uninstall for values/dev.yaml on Helm 3
and values/prod.yaml on Helm 4.

One release per (values file, helm version), in its own fresh namespace; the steps run in
order and each one asserts on the real cluster (kube-apiserver + controllers + kwok nodes).
"""

from __future__ import annotations

import pytest

from tests.e2e import checks
from tests.e2e.checks import Release
from tests.e2e.kube import Cluster

# The real node (tests/node/test_rollouts.py) runs the same steps with real pods for dev on
# Helm 4 and prod on Helm 3; here the other two pairs, so that every pair runs once.
CASES = [("dev", 3), ("prod", 4)]


@pytest.fixture(scope="class", params=CASES, ids=[f"{v}-helm{h}" for v, h in CASES])
def rel(request: pytest.FixtureRequest) -> Release:
    values, helm = request.param
    return Release(values=values, helm=helm, namespace=f"e2e-{values}-helm{helm}")


class TestLifecycle:
    def test_1_install_wait(self, cluster: Cluster, rel: Release) -> None:
        """install --wait: every templated object exists, Deployments ready, migration hook ran first."""
        checks.install(cluster, rel)
        rel.done.add("install")

    def test_2_upgrade_config_change(self, cluster: Cluster, rel: Release) -> None:
        """upgrade with a config change: new ReplicaSets (checksum), hook re-ran, revision 2."""
        rel.require("install")
        checks.upgrade_config(cluster, rel, revision=2)
        rel.done.add("upgrade")

    def test_3_broken_upgrade_then_rollback(self, cluster: Cluster, rel: Release) -> None:
        """a never-ready upgrade fails under --wait; rollback restores revision 2 and is ready."""
        rel.require("upgrade")
        checks.broken_upgrade_then_rollback(cluster, rel, good=2)
        rel.done.add("rollback")

    def test_5_uninstall(self, cluster: Cluster, rel: Release) -> None:
        """uninstall removes everything the release created except objects marked keep."""
        rel.require("install")
        checks.uninstall(cluster, rel)
