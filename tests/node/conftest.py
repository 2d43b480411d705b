"""Fixtures for the chart on a real node: real pods of the project's own image.

`make node-e2e` (ci/node-e2e.sh) starts the control plane, a kubelet with containerd and
runc, kube-proxy and CoreDNS, imports the image built by ci/image.sh, publishes the local
PostgreSQL, Redis and Neo4j on the node's bridge address, and sets:
  MEMSTACK_NODE_KUBECONFIG   admin kubeconfig of that cluster
  MEMSTACK_E2E_HELM3/HELM4   helm binaries
  MEMSTACK_E2E_KUBECTL       kubectl
  E2E_NODE_IP, E2E_NODE_NAME (ci/e2e/node.env)

Without MEMSTACK_NODE_KUBECONFIG these tests are not collected at all (a plain `pytest tests`
never reports them as passed or skipped); they run only through `make node-e2e`.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.kube import Cluster
from tests.node.node import Node
from tests.node.traffic import TrafficReport

# Every traffic verdict of the run, printed at the end (the numbers the docs quote).
TRAFFIC_REPORTS: list[tuple[str, TrafficReport]] = []
# (phase, event, seconds after the fault or the recovery) of the monitoring test.
ALERT_TIMINGS: list[tuple[str, str, float]] = []

if not os.environ.get("MEMSTACK_NODE_KUBECONFIG"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def node() -> Node:
    n = Node.from_environ(Cluster.from_environ("MEMSTACK_NODE_KUBECONFIG", "make node-e2e"))
    # Fail loudly (not skip) when the node is not there or not ready.
    n.assert_ready()
    return n


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TRAFFIC_REPORTS:
        terminalreporter.section("traffic during upgrades and rollbacks")
        for step, report in TRAFFIC_REPORTS:
            terminalreporter.write_line(f"{step}: {report.summary()}")
    if ALERT_TIMINGS:
        terminalreporter.section("alerts in the cluster (seconds after the fault / the recovery)")
        for phase, event, seconds in ALERT_TIMINGS:
            terminalreporter.write_line(f"{phase:>10}  {seconds:6.1f}s  {event}")
