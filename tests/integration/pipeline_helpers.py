"""Helpers for pipeline tests: a running worker, an API client with a key, graph queries."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import httpx
from neo4j import GraphDatabase

from service.settings import Settings
from tests.integration.conftest import REPO, free_port, local_environ


@dataclass
class RunningWorker:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_worker(log_path: Path, **overrides: str) -> Iterator[RunningWorker]:
    port = free_port()
    environ = local_environ(METRICS_PORT=str(port), LOG_FORMAT="text", **overrides)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=environ, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO
        )
    worker = RunningWorker(process, f"http://127.0.0.1:{port}/metrics", log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(worker.metrics_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, worker.log()
            assert time.monotonic() < deadline, "worker metrics never came up"
            time.sleep(0.2)
        yield worker
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class Client:
    """A thin authenticated client for the API under test."""

    def __init__(self, base_url: str, key: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def create_project(self, name: str | None = None) -> str:
        response = self.http.post("/api/v1/projects", json={"name": name or f"p-{uuid.uuid4().hex[:12]}"})
        assert response.status_code == 201, response.text
        project_id: str = response.json()["id"]
        return project_id

    def post_episode(self, project_id: str, content: str, **headers: str) -> httpx.Response:
        return self.http.post(
            f"/api/v1/projects/{project_id}/episodes", json={"content": content}, headers=headers
        )

    def statuses(self, project_id: str) -> dict[str, str]:
        found: dict[str, str] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
            page = self.http.get(f"/api/v1/projects/{project_id}/episodes", params=params).json()
            found.update({item["id"]: item["status"] for item in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def wait_all(self, project_id: str, status: str, count: int, timeout: float = 120) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses(project_id)
            if len(statuses) == count and all(s == status for s in statuses.values()):
                return statuses
            if time.monotonic() > deadline:
                raise AssertionError(f"not all {count} episodes {status}: {statuses}")
            time.sleep(0.3)


def graph_query(settings: Settings, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
    with GraphDatabase.driver(
        settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)
    ) as driver:
        records, _, _ = driver.execute_query(query, params, database_=settings.neo4j_database)
    return [record.data() for record in records]


def project_graph(
    settings: Settings, project_id: str
) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    entities = graph_query(
        settings, "MATCH (e:Entity {project_id: $p}) RETURN e.name AS name, e.type AS type", p=project_id
    )
    facts = graph_query(
        settings,
        "MATCH (a:Entity)-[r:RELATES_TO {project_id: $p}]->(b:Entity)"
        " RETURN a.name AS a, r.name AS r, b.name AS b",
        p=project_id,
    )
    return {(e["name"], e["type"]) for e in entities}, {(f["a"], f["r"], f["b"]) for f in facts}


def graph_counts(settings: Settings, project_id: str) -> dict[str, int]:
    rows = graph_query(
        settings,
        "CALL () { MATCH (e:Entity {project_id: $p}) RETURN count(e) AS entities }"
        " CALL () { MATCH (ep:Episode {project_id: $p}) RETURN count(ep) AS episodes }"
        " CALL () { MATCH ()-[r:RELATES_TO {project_id: $p}]->() RETURN count(r) AS facts }"
        " CALL () { MATCH (:Episode {project_id: $p})-[m:MENTIONS]->() RETURN count(m) AS mentions }"
        " RETURN entities, episodes, facts, mentions",
        p=project_id,
    )
    return {k: int(v) for k, v in rows[0].items()}


def env_with(**overrides: str) -> dict[str, str]:
    return local_environ(**overrides)
