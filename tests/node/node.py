"""The real node as the scenarios see it: its cluster, its containerd, and the databases
the chart's pods reach on the node's bridge address."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import tomllib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import redis
from psycopg import sql

from tests.e2e.kube import REPO, Cluster, Obj, wait_until

CONTAINERD_SOCKET = "/run/memstack-node/containerd.sock"
IMAGE_REPOSITORY = "localhost/memstack"


def image_tag() -> str:
    """The tag ci/image.sh gives the image: the package version."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def k8s_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Endpoints:
    """Where one set of databases listens, on the bridge address and on loopback alike."""

    postgres_port: int
    redis_port: int
    neo4j_port: int
    ca_file: str | None = None


@dataclass(frozen=True)
class Node:
    cluster: Cluster
    name: str
    ip: str
    passwords: dict[str, str]
    bootstrap_key: str
    plain: Endpoints
    tls: Endpoints

    @property
    def ca_file(self) -> str:
        assert self.tls.ca_file, "no database CA"
        return self.tls.ca_file

    @classmethod
    def from_environ(cls, cluster: Cluster) -> Node:
        env = os.environ
        return cls(
            cluster=cluster,
            name=env.get("E2E_NODE_NAME", "memstack-node"),
            ip=env.get("E2E_NODE_IP", "198.18.0.1"),
            passwords={
                "neo4j": env["NEO4J_PASSWORD"],
                "postgresql": env["POSTGRES_PASSWORD"],
                "redis": env["REDIS_PASSWORD"],
            },
            bootstrap_key=env["MEMSTACK_BOOTSTRAP_API_KEY"],
            plain=Endpoints(
                int(env.get("POSTGRES_PORT", "5432")),
                int(env.get("REDIS_PORT", "6379")),
                int(env.get("NEO4J_BOLT_PORT", "7687")),
            ),
            tls=Endpoints(
                int(env["E2E_NODE_TLS_PG_PORT"]),
                int(env["E2E_NODE_TLS_REDIS_PORT"]),
                int(env["E2E_NODE_TLS_NEO4J_PORT"]),
                env["MEMSTACK_NODE_DB_CA"],
            ),
        )

    # --- the node -----------------------------------------------------------------------
    def assert_ready(self) -> None:
        node = self.cluster.must_get("node", self.name, None)
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready, f"node {self.name} has no Ready condition"
        assert ready[0]["status"] == "True", f"node {self.name} is not Ready: {ready}"
        dns = self.cluster.must_get("Deployment.v1.apps", "coredns", "kube-system")
        assert int((dns.get("status") or {}).get("readyReplicas", 0)) >= 1, "CoreDNS is not ready"

    def ctr(self, *args: str) -> str:
        res = subprocess.run(
            ["ctr", "--address", CONTAINERD_SOCKET, "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return res.stdout

    def containers_of(self, namespace: str) -> list[str]:
        """Containers (sandboxes included) that containerd still has for pods of `namespace`."""
        out = self.ctr("containers", "ls", "-q", f'labels."io.kubernetes.pod.namespace"=={namespace}')
        return out.split()

    def kill_container(self, pod: Obj, container: str) -> None:
        """SIGKILL a container's process through containerd: a crash, not a graceful stop."""
        status = next(c for c in pod["status"]["containerStatuses"] if c["name"] == container)
        cid = str(status["containerID"]).removeprefix("containerd://")
        self.ctr("tasks", "kill", "--signal", "SIGKILL", cid)

    # --- pods ---------------------------------------------------------------------------
    def pods(self, namespace: str, selector: str) -> list[Obj]:
        return self.cluster.list_objects("pods", namespace, selector)

    def assert_pods_ready(self, namespace: str, selector: str, count: int) -> list[Obj]:
        """`count` pods Running on this node, every container Ready through its real probes."""

        def ready() -> list[Obj] | None:
            pods = [p for p in self.pods(namespace, selector) if not p["metadata"].get("deletionTimestamp")]
            ok = [
                p
                for p in pods
                if p["status"].get("phase") == "Running"
                and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
            ]
            return ok if len(ok) == count == len(pods) else None

        pods = wait_until(f"{count} ready pods {selector} in {namespace}", ready, timeout=240)
        for p in pods:
            assert p["spec"]["nodeName"] == self.name, f"{p['metadata']['name']} is not on the real node"
            for c in p["status"]["containerStatuses"]:
                assert c["imageID"], f"{c['name']} has no image id: no container ran"
                assert "running" in c["state"], f"{c['name']} is not running: {c['state']}"
        return pods

    def service_url(self, namespace: str, name: str, port_name: str = "http") -> str:
        svc = self.cluster.must_get("service", name, namespace)
        port = next(p for p in svc["spec"]["ports"] if p.get("name") == port_name)
        return f"http://{svc['spec']['clusterIP']}:{port['port']}"

    def logs(self, namespace: str, selector: str) -> str:
        res = self.cluster.kubectl_run(
            "-n",
            namespace,
            "logs",
            "-l",
            selector,
            "--all-containers",
            "--tail",
            "60",
            "--prefix",
            check=False,
        )
        return res.stdout + res.stderr

    # --- the databases --------------------------------------------------------------------
    def database_for(self, namespace: str) -> str:
        return "memstack_" + re.sub(r"[^a-z0-9]", "_", namespace)

    def _conninfo(self, ep: Endpoints, dbname: str) -> str:
        user = os.environ.get("POSTGRES_USER", "memstack")
        tls = f" sslmode=verify-full sslrootcert={ep.ca_file}" if ep.ca_file else ""
        return (
            f"host=127.0.0.1 port={ep.postgres_port} dbname={dbname} user={user} "
            f"password={self.passwords['postgresql']} connect_timeout=10{tls}"
        )

    def create_database(self, ep: Endpoints, name: str) -> None:
        """A database of the release's own: only its migration hook can create the schema."""
        self.drop_database(ep, name)
        with psycopg.connect(self._conninfo(ep, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, ep: Endpoints, name: str) -> None:
        with psycopg.connect(self._conninfo(ep, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def flush_redis(self, ep: Endpoints, db: int) -> None:
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": ep.ca_file} if ep.ca_file else {}
        client = redis.Redis(
            host="127.0.0.1", port=ep.redis_port, db=db, password=self.passwords["redis"], **tls
        )
        try:
            client.flushdb()
        finally:
            client.close()

    def schema_migrations(self, ep: Endpoints, dbname: str) -> list[tuple[int, datetime]]:
        with psycopg.connect(self._conninfo(ep, dbname)) as conn:
            rows = conn.execute(
                "SELECT version, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall()
        return [(int(v), t) for v, t in rows]


class ReadyPods:
    """Samples, every `interval` seconds in a thread, how many pods of `selector` are Ready:
    a rolling update that keeps `maxUnavailable: 0` never goes below the replica count."""

    def __init__(self, node: Node, namespace: str, selector: str, interval: float = 1.0) -> None:
        self._node, self._ns, self._sel, self._interval = node, namespace, selector, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ready-pods", daemon=True)
        self.samples: list[int] = []

    def _ready(self) -> int:
        pods = self._node.pods(self._ns, self._sel)
        return sum(
            1
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []
            )
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._ready())
            self._stop.wait(self._interval)

    def __enter__(self) -> ReadyPods:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
