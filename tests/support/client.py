"""An authenticated API client for the service under test, and direct reads of its graph."""

from __future__ import annotations

import time
import uuid
import weakref
from typing import Any, LiteralString

import httpx
from neo4j import GraphDatabase

from service.settings import Settings


class Client:
    """A thin authenticated client for the API under test."""

    def __init__(self, base_url: str, key: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        # Module fixtures hand clients around without closing them: close the pool with the client.
        weakref.finalize(self, self.http.close)

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
