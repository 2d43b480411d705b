"""Fixtures for the end-to-end scenarios against a real Kubernetes API server.

`make e2e` (ci/e2e.sh) builds and starts the cluster and sets:
  MEMSTACK_E2E_KUBECONFIG  admin kubeconfig of the cluster under test
  MEMSTACK_E2E_HELM3       helm 3.19 binary
  MEMSTACK_E2E_HELM4       helm 4.3 binary
  MEMSTACK_E2E_KUBECTL     kubectl binary

Without MEMSTACK_E2E_KUBECONFIG the e2e tests are not collected at all, so a plain
`pytest tests` (unit/integration/chart runs) never reports them as passed or skipped;
they only run through `make e2e`, which always sets it.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.kube import Cluster

if not os.environ.get("MEMSTACK_E2E_KUBECONFIG"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return Cluster.from_environ("MEMSTACK_E2E_KUBECONFIG", "make e2e")
