"""The chart's own image as real pods: install, use, uninstall (issue 10, scenarios a, b, e).

Each release gets a fresh namespace and a PostgreSQL database of its own, so only its
migration hook can have created the schema the API pods become ready on.
"""

from __future__ import annotations

import httpx
import pytest

from service.settings import load_settings
from tests.e2e.kube import RELEASE
from tests.node.node import Node
from tests.node.release import API, WORKER, NodeRelease
from tests.node.traffic import EpisodeLoad, EventFollower, expected_graph, setup_project, verify
from tests.support.client import project_graph
from tests.support.stack import local_environ

CASES = [("dev", 3), ("staging", 4), ("prod", 3), ("prod", 4)]


@pytest.fixture(scope="class", params=CASES, ids=[f"{v}-helm{h}" for v, h in CASES])
def rel(request: pytest.FixtureRequest, node: Node) -> NodeRelease:
    values, helm = request.param
    return NodeRelease(values=values, helm_major=helm, namespace=f"node-{values}-helm{helm}", node=node)


class TestLifecycle:
    def test_a_install_wait(self, rel: NodeRelease) -> None:
        """install --wait: real pods Ready through their probes, migrations applied first."""
        res = rel.install()
        assert res.returncode == 0, rel.explain(res)
        assert rel.history() == [(1, "deployed")]
        api = rel.node.assert_pods_ready(rel.namespace, API, rel.replicas("api"))
        workers = rel.node.assert_pods_ready(rel.namespace, WORKER, rel.replicas("worker"))
        rel.assert_migrated_before_pods(api + workers)
        for p in api + workers:
            for c in p["status"]["containerStatuses"]:
                assert c["restartCount"] == 0, f"{p['metadata']['name']}/{c['name']} restarted: {c}"

    def test_a_helm_test(self, rel: NodeRelease) -> None:
        """`helm test`: a pod resolves the API's Service through CoreDNS and gets 200 twice."""
        res = rel.helm("test", RELEASE, "-n", rel.namespace, "--timeout", "3m", check=False)
        assert res.returncode == 0, rel.explain(res)
        assert "Phase:          Succeeded" in res.stdout, res.stdout

    def test_b_service_through_the_cluster(self, rel: NodeRelease) -> None:
        """Through the API's Service: a key and a project, episodes posted, SSE to `completed`,
        search finds what they said."""
        base = rel.api_url()
        key, project = setup_project(base, rel.node.bootstrap_key, name="through-the-service")
        with EventFollower(base, key, project) as follower:
            with EpisodeLoad(base, key, project, clients=2, max_episodes=12) as load:
                assert load.wait_accepted(12, timeout=120), load.stats
            report = verify([load], [follower], timeout=180)
        assert report.ok, report.summary()
        assert report.completed == 12, report.summary()
        settings = load_settings(local_environ(), dotenv=None)
        assert project_graph(settings, project) == expected_graph(r.index for r in load.records)
        found = httpx.post(
            f"{base}/api/v1/projects/{project}/search",
            json={"query": "Person3 Smith", "limit": 5},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert found.status_code == 200, found.text
        names = [r["name"] for r in found.json()["results"]]
        assert "Person3 Smith" in names, names

    def test_e_uninstall(self, rel: NodeRelease) -> None:
        """uninstall: every object gone, and nothing of the release left running on the node."""
        res = rel.helm("uninstall", RELEASE, "-n", rel.namespace, "--wait", "--timeout", "3m", check=False)
        assert res.returncode == 0, res.describe()
        rel.wait_gone()
        left = rel.node.cluster.kubectl_run(
            "-n", rel.namespace, "get", "all,cm,secret,pdb,hpa,networkpolicy", "-l",
            f"app.kubernetes.io/instance={RELEASE}", "-o", "name",
        ).stdout.split()  # fmt: skip
        assert not left, f"objects left after uninstall: {left}"
        rel.node.cluster.kubectl_run("delete", "namespace", rel.namespace, "--wait=true", timeout=180)
        rel.node.drop_database(rel.endpoints, rel.database)
