"""One Helm release of the chart on the real node, with the values an operator would pass."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tests.e2e.kube import CHART, RELEASE, VALUES_DIR, Obj, Result, parse_manifests, wait_flag, wait_until
from tests.node.node import IMAGE_REPOSITORY, Endpoints, Node, image_tag, k8s_time

HELM_TIMEOUT = "5m"
API = "app.kubernetes.io/instance=memstack,app.kubernetes.io/component=api"
WORKER = "app.kubernetes.io/instance=memstack,app.kubernetes.io/component=worker"
MIGRATIONS = sorted(p.name for p in (CHART.parent / "service" / "stores" / "migrations").glob("[0-9]*.sql"))
CA_CONFIGMAP = "memstack-db-ca"
# A one-node cluster with 1.75 allocatable CPUs: fewer replicas and smaller requests than
# the environments' own (docs/e2e.md lists these overrides).
_SMALL = ["--set", "api.resources.requests.cpu=100m", "--set", "worker.resources.requests.cpu=100m"]
ONE_NODE = {
    "staging": [
        *_SMALL,
        "--set",
        "api.autoscaling.minReplicas=2",
        "--set",
        "worker.autoscaling.minReplicas=1",
    ],
    "prod": [*_SMALL, "--set", "api.autoscaling.minReplicas=2", "--set", "worker.autoscaling.minReplicas=1"],
}
# Redis logical databases no other suite uses, one per release (emptied before install).
_redis_dbs = itertools.cycle((7, 8, 10, 11, 13, 15))


@dataclass
class NodeRelease:
    values: str
    helm_major: int
    namespace: str
    node: Node
    redis_db: int = field(default_factory=lambda: next(_redis_dbs))
    extra: list[str] = field(default_factory=list)

    @property
    def database(self) -> str:
        return self.node.database_for(self.namespace)

    @property
    def tls(self) -> bool:
        """staging and prod reach every database over TLS, with credentials from existing Secrets."""
        return self.values != "dev"

    @property
    def endpoints(self) -> Endpoints:
        return self.node.tls if self.tls else self.node.plain

    def args(self, *overrides: str) -> list[str]:
        """The values file, then where the databases and the image are on this node."""
        n, ep = self.node, self.endpoints
        sets = {
            "image.repository": IMAGE_REPOSITORY,
            "image.tag": image_tag(),
            "image.digest": "",
            "image.pullPolicy": "Never",
            # One Neo4j server: the direct scheme (a routing table would hand out the
            # server's own loopback address).
            "neo4j.uri": f"{'bolt+s' if self.tls else 'bolt'}://{n.ip}:{ep.neo4j_port}",
            "postgresql.host": n.ip,
            "postgresql.port": str(ep.postgres_port),
            "postgresql.database": self.database,
            "redis.host": n.ip,
            "redis.port": str(ep.redis_port),
            "redis.db": str(self.redis_db),
        }
        if self.tls:
            # The CA an operator is handed with managed databases, from a ConfigMap.
            sets |= {f"{dep}.ca.configMapName": CA_CONFIGMAP for dep in ("neo4j", "postgresql", "redis")}
        else:
            sets |= {
                "neo4j.password": n.passwords["neo4j"],
                "postgresql.password": n.passwords["postgresql"],
                "redis.password": n.passwords["redis"],
                "bootstrapApiKey.value": n.bootstrap_key,
            }
        # Helm applies all --set before all --set-string, whatever their order: an override of
        # a key set here replaces it instead of following it.
        extra = [*self.extra, *overrides]
        for flag, kv in zip(extra[::2], extra[1::2], strict=True):
            assert flag == "--set", f"overrides are --set KEY=VALUE pairs, got {flag} {kv}"
            key, _, value = kv.partition("=")
            sets[key] = value
        out = ["-f", str(VALUES_DIR / f"{self.values}.yaml"), *ONE_NODE.get(self.values, [])]
        for key, value in sets.items():
            flag = "--set-string" if key.endswith(("password", "value", "tag")) else "--set"
            out += [flag, f"{key}={value}"]
        return out

    def prerequisites(self) -> None:
        """What an operator creates before installing staging/prod: the Secrets the values
        name, the CA ConfigMap and the PriorityClass."""
        c, n = self.node.cluster, self.node
        c.kubectl_run("create", "namespace", self.namespace)
        secrets = {
            "memstack-neo4j": ("NEO4J_PASSWORD", n.passwords["neo4j"]),
            "memstack-postgresql": ("POSTGRES_PASSWORD", n.passwords["postgresql"]),
            "memstack-redis": ("REDIS_PASSWORD", n.passwords["redis"]),
            "memstack-bootstrap": ("MEMSTACK_BOOTSTRAP_API_KEY", n.bootstrap_key),
        }
        for name, (key, value) in secrets.items():
            c.kubectl_run(
                "-n", self.namespace, "create", "secret", "generic", name, f"--from-literal={key}={value}"
            )
        c.kubectl_run(
            "-n", self.namespace, "create", "configmap", CA_CONFIGMAP, f"--from-file=ca.crt={n.ca_file}"
        )  # fmt: skip
        if c.get("PriorityClass.v1.scheduling.k8s.io", "memstack-critical", None) is None:
            c.kubectl_run("create", "priorityclass", "memstack-critical", "--value=100000")

    def replicas(self, component: str) -> int:
        """Pods the release runs of a component: its fixed replicas, or the HPA's minimum."""
        rendered = parse_manifests(
            self.helm("template", RELEASE, str(CHART), "-n", self.namespace, *self.args()).stdout
        )
        name = f"memstack-{component}"
        for obj in rendered:
            if obj["kind"] == "HorizontalPodAutoscaler" and obj["spec"]["scaleTargetRef"]["name"] == name:
                return int(obj["spec"].get("minReplicas", 1))
        for obj in rendered:
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == name:
                return int(obj["spec"].get("replicas", 1))
        raise AssertionError(f"no Deployment {name} rendered")

    def helm(self, *args: str, check: bool = True, timeout: float = 900) -> Result:
        return self.node.cluster.helm(self.helm_major, *args, check=check, timeout=timeout)

    def install(self) -> Result:
        self.node.create_database(self.endpoints, self.database)
        self.node.flush_redis(self.endpoints, self.redis_db)
        if self.tls:
            self.prerequisites()
        return self.helm(
            "install", RELEASE, str(CHART), "-n", self.namespace, "--create-namespace",
            *self.args(), wait_flag(self.helm_major), "--timeout", HELM_TIMEOUT, check=False,
        )  # fmt: skip

    def upgrade(self, *overrides: str, timeout: str = HELM_TIMEOUT, check: bool = False) -> Result:
        return self.helm(
            "upgrade", RELEASE, str(CHART), "-n", self.namespace, *self.args(*overrides),
            wait_flag(self.helm_major), "--timeout", timeout, check=check,
        )  # fmt: skip

    def rollback(self, revision: int) -> Result:
        return self.helm(
            "rollback", RELEASE, str(revision), "-n", self.namespace, wait_flag(self.helm_major),
            "--timeout", HELM_TIMEOUT, check=False,
        )  # fmt: skip

    def history(self) -> list[tuple[int, str]]:
        return [
            (int(h["revision"]), str(h["status"]))
            for h in self.node.cluster.history(self.helm_major, self.namespace)
        ]

    def warnings(self) -> str:
        events = [
            f"{e['involvedObject'].get('kind')}/{e['involvedObject'].get('name')}: {e.get('message')}"
            for e in self.node.cluster.events(self.namespace)
            if e.get("type") == "Warning"
        ]
        return "\n".join(events[-30:])

    def explain(self, res: Result) -> str:
        return (
            f"{res.describe()}\n--- warning events ---\n{self.warnings()}\n"
            f"--- api logs ---\n{self.node.logs(self.namespace, API)[-3000:]}\n"
            f"--- worker logs ---\n{self.node.logs(self.namespace, WORKER)[-3000:]}"
        )

    # --- what the scenarios check ------------------------------------------------------------
    def api_url(self) -> str:
        return self.node.service_url(self.namespace, "memstack-api")

    def assert_migrated_before_pods(self, pods: list[Obj]) -> None:
        """The hook Job applied every migration, and before any of these pods started."""
        applied = self.node.schema_migrations(self.endpoints, self.database)
        assert [v for v, _ in applied] == [int(m.split("_", 1)[0]) for m in MIGRATIONS], (
            f"schema_migrations {applied} != migrations shipped {MIGRATIONS}"
        )
        last = max(t for _, t in applied)
        for p in pods:
            started = k8s_time(p["status"]["startTime"])
            assert last < started, (
                f"pod {p['metadata']['name']} started {started}, before migrations ended {last}"
            )

    def wait_gone(self) -> None:
        wait_until(
            f"no containers of {self.namespace} left on the node",
            lambda: not self.node.containers_of(self.namespace),
            timeout=180,
        )
