"""Upgrades and rollbacks of real pods under live traffic (issue 10, scenarios c and d).

While Helm works, clients post episodes continuously (an Idempotency-Key each, retrying
503 and connection errors with the same key) and SSE clients follow the project's events,
resuming with Last-Event-ID. After each step: nothing accepted is lost or stored twice,
no 5xx but 503 with Retry-After, and every follower saw every episode complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from service.settings import load_settings
from tests.e2e.kube import RELEASE, wait_until
from tests.node.conftest import TRAFFIC_REPORTS
from tests.node.node import Node, ReadyPods, image_tag
from tests.node.release import API, MIGRATIONS, WORKER, NodeRelease
from tests.node.traffic import EpisodeLoad, EventFollower, TrafficReport, setup_project, verify
from tests.support.client import graph_counts
from tests.support.stack import local_environ

CASES = [("dev", 4), ("prod", 3)]
CONFIG_CHANGE = ("--set", "config.rateLimitPerMinute=1234")


@dataclass
class Rollouts:
    rel: NodeRelease
    done: set[str] = field(default_factory=set)
    reports: dict[str, TrafficReport] = field(default_factory=dict)
    first_index: int = 0

    def require(self, step: str) -> None:
        assert step in self.done, f"step '{step}' did not pass"

    @contextmanager
    def traffic(self, step: str) -> Iterator[EpisodeLoad]:
        """Load and two followers around the block; the verdict is checked after it."""
        base = self.rel.api_url()
        key, project = setup_project(base, self.rel.node.bootstrap_key, name=step)
        followers = [EventFollower(base, key, project, name=f"follower-{i}") for i in range(2)]
        for f in followers:
            f.start()
        load = EpisodeLoad(base, key, project, clients=3, pause=0.5, first_index=self.first_index)
        load.start()
        try:
            assert load.wait_accepted(5, timeout=60), f"no traffic accepted before {step}: {load.stats}"
            yield load
            # Some traffic on the result, too.
            time.sleep(5)
        finally:
            load.stop()
        report = verify([load], followers, timeout=300)
        self.reports[step] = report
        TRAFFIC_REPORTS.append((f"{self.rel.namespace} {step}", report))
        self.first_index += len(load.records)
        assert report.ok, f"{step}: {report.summary()}"
        assert report.accepted >= 10, f"{step}: too little traffic to prove anything: {report.summary()}"

    def pod_uids(self, selector: str) -> set[str]:
        return {str(p["metadata"]["uid"]) for p in self.rel.node.pods(self.rel.namespace, selector)}


@pytest.fixture(scope="class", params=CASES, ids=[f"{v}-helm{h}" for v, h in CASES])
def ro(request: pytest.FixtureRequest, node: Node) -> Rollouts:
    values, helm = request.param
    return Rollouts(
        NodeRelease(values=values, helm_major=helm, namespace=f"roll-{values}-helm{helm}", node=node)
    )


class TestRollouts:
    def test_install(self, ro: Rollouts) -> None:
        res = ro.rel.install()
        assert res.returncode == 0, ro.rel.explain(res)
        ro.rel.node.assert_pods_ready(ro.rel.namespace, API, ro.rel.replicas("api"))
        ro.done.add("install")

    def test_b_worker_killed_mid_job(self, ro: Rollouts) -> None:
        """SIGKILL the worker's process mid-job and delete its pod: the Deployment replaces it and
        every episode completes exactly once (the graph equals a run without the kill)."""
        ro.require("install")
        base = ro.rel.api_url()
        settings = load_settings(local_environ(), dotenv=None)
        count = 40
        results: dict[str, dict[str, int]] = {}
        for kill in (False, True):
            key, project = setup_project(base, ro.rel.node.bootstrap_key, name=f"kill-{kill}")
            (victim,) = ro.rel.node.pods(ro.rel.namespace, WORKER)
            with EpisodeLoad(base, key, project, clients=4, pause=0.05, max_episodes=count) as load:
                if kill:
                    wait_until("the worker busy with the first episodes", lambda: load.accepted_count() >= 8)
                    ro.rel.node.kill_container(victim, "worker")
                    ro.rel.node.cluster.kubectl_run(
                        "-n", ro.rel.namespace, "delete", "pod", victim["metadata"]["name"],
                        "--grace-period=0", "--force",
                    )  # fmt: skip
                assert load.wait_accepted(count, timeout=180), load.stats
            report = verify([load], timeout=300)
            assert report.ok, report.summary()
            assert report.completed == count, report.summary()
            results[f"kill={kill}"] = graph_counts(settings, project)
            if kill:
                (replacement,) = ro.rel.node.assert_pods_ready(ro.rel.namespace, WORKER, 1)
                assert replacement["metadata"]["uid"] != victim["metadata"]["uid"]
        assert results["kill=True"] == results["kill=False"], results

    def test_c_upgrade_under_load(self, ro: Rollouts) -> None:
        """A config change rolls every pod, one at a time, while traffic flows: nothing lost."""
        ro.require("install")
        before = ro.pod_uids(API) | ro.pod_uids(WORKER)
        replicas = ro.rel.replicas("api")
        with ro.traffic("upgrade"), ReadyPods(ro.rel.node, ro.rel.namespace, API) as ready:
            res = ro.rel.upgrade(*CONFIG_CHANGE)
            assert res.returncode == 0, ro.rel.explain(res)
            # The old pods drain (preStop, then graceful shutdown) after the new ones are Ready;
            # keep the traffic going until they are gone, so their streams were really cut.
            wait_until(
                "the old pods gone",
                lambda: not before & (ro.pod_uids(API) | ro.pod_uids(WORKER)),
                timeout=180,
            )
        assert ro.rel.history() == [(1, "superseded"), (2, "deployed")]
        # One at a time (maxSurge 1, maxUnavailable 0): never fewer Ready API pods than replicas.
        assert len(ready.samples) >= 5, ready.samples
        assert min(ready.samples) >= replicas, f"Ready API pods during the roll: {ready.samples}"
        report = ro.reports["upgrade"]
        assert all(f.reconnects >= 1 for f in report.followers), (
            f"the API pod rolled but no follower had to resume: {report.summary()}"
        )
        ro.done.add("upgrade")

    @pytest.mark.parametrize("broken", ["crash", "never-ready"])
    def test_d_broken_upgrade_then_rollback(self, ro: Rollouts, broken: str) -> None:
        """An image that exits at start / never becomes ready: --wait fails, the old pods keep
        serving, `helm rollback --wait` recovers; nothing lost throughout."""
        ro.require("upgrade")
        good = ro.rel.history()[-1][0]
        with ro.traffic(f"broken-{broken}"):
            res = ro.rel.upgrade(*CONFIG_CHANGE, "--set", f"image.tag={image_tag()}-{broken}", timeout="75s")
            assert res.returncode != 0, f"the {broken} upgrade succeeded:\n{res.describe()}"
            assert ro.rel.history()[-1][1] == "failed"
            res = ro.rel.rollback(good)
            assert res.returncode == 0, ro.rel.explain(res)
        assert ro.rel.history()[-1][1] == "deployed"
        # The broken release's hook migrated ahead (its image ships the next migration): the
        # rolled-back pods run, and are Ready, on a schema newer than their code.
        versions = [v for v, _ in ro.rel.node.schema_migrations(ro.rel.endpoints, ro.rel.database)]
        assert versions == list(range(1, len(MIGRATIONS) + 2)), versions
        for selector in (API, WORKER):
            component = "api" if selector == API else "worker"
            for p in ro.rel.node.assert_pods_ready(ro.rel.namespace, selector, ro.rel.replicas(component)):
                images = {c["image"] for c in p["spec"]["containers"]}
                assert images == {f"localhost/memstack:{image_tag()}"}, images

    def test_uninstall(self, ro: Rollouts) -> None:
        ro.require("install")
        res = ro.rel.helm(
            "uninstall", RELEASE, "-n", ro.rel.namespace, "--wait", "--timeout", "3m", check=False
        )
        assert res.returncode == 0, res.describe()
        ro.rel.wait_gone()
        ro.rel.node.cluster.kubectl_run("delete", "namespace", ro.rel.namespace, "--wait=true", timeout=180)
        ro.rel.node.drop_database(ro.rel.endpoints, ro.rel.database)
