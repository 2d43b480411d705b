"""Search and graph reads over a known corpus: the real API, worker, PostgreSQL, Redis and Neo4j."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from service.settings import Settings
from tests.support.client import Client, graph_query
from tests.support.processes import RunningApi, RunningWorker

CORPUS = [
    'Alice Smith works at Acme Corp in Berlin. Yesterday Alice met Bob Jones at the "Quantum Lab".',
    "Carol White leads Globex Corporation in Paris.",
    "Bob Jones writes reports for Globex Corporation.",
]
# Same names, another project of the same tenant: must never leak into the first one's answers.
OTHER_CORPUS = ["Alice Smith works at Initech Corp in Madrid."]


def entity_id(name: str) -> str:
    return base64.urlsafe_b64encode(" ".join(name.casefold().split()).encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Corpus:
    client: Client
    project: str
    other: str


@pytest.fixture(scope="module")
def corpus(api: RunningApi, settings: Settings, worker: RunningWorker) -> Corpus:
    client = Client(api.base_url, settings.memstack_bootstrap_api_key)
    project, other = client.create_project(), client.create_project()
    for target, texts in ((project, CORPUS), (other, OTHER_CORPUS)):
        response = client.http.post(
            f"/api/v1/projects/{target}/episodes/bulk", json={"episodes": [{"content": t} for t in texts]}
        )
        assert response.status_code == 202, response.text
    client.wait_all(project, "completed", len(CORPUS))
    client.wait_all(other, "completed", len(OTHER_CORPUS))
    return Corpus(client, project, other)


def search(corpus: Corpus, query: str, project: str | None = None, **extra: Any) -> list[dict[str, Any]]:
    response = corpus.client.http.post(
        f"/api/v1/projects/{project or corpus.project}/search", json={"query": query, **extra}
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def names(results: list[dict[str, Any]], kind: str) -> list[str]:
    return [r["name"] for r in results if r["kind"] == kind]


def test_search_finds_the_expected_entities_and_facts(corpus: Corpus) -> None:
    results = search(corpus, "Globex", limit=20)
    assert "Globex Corporation" in names(results, "entity")
    facts = {(r["source"]["name"], r["name"], r["target"]["name"]) for r in results if r["kind"] == "fact"}
    assert {
        ("Carol White", "LEADS", "Globex Corporation"),
        ("Bob Jones", "WRITES_REPORTS_FOR", "Globex Corporation"),
    } <= facts
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1.5 for s in scores)
    # The neighbourhood of the best entities joins the answer: Paris is only next to Globex.
    paris = [r for r in results if r["kind"] == "entity" and r["name"] == "Paris"]
    assert paris


def test_search_ranks_the_direct_hit_first(corpus: Corpus) -> None:
    results = search(corpus, "Quantum Lab", limit=5)
    top_entity = next(r for r in results if r["kind"] == "entity")
    assert top_entity["name"] == "Quantum Lab"
    assert top_entity["matched"] == "text"
    assert top_entity["id"] == entity_id("Quantum Lab")


def test_search_never_leaves_the_project(corpus: Corpus, settings: Settings) -> None:
    assert search(corpus, "Initech Madrid") == []
    assert "Initech Corp" in names(search(corpus, "Initech", project=corpus.other), "entity")
    own = {
        row["key"]
        for row in graph_query(
            settings, "MATCH (e:Entity {project_id: $p}) RETURN e.key AS key", p=corpus.project
        )
    }
    for query in ("Alice Smith", "works at", "Bob", "Corp"):
        for result in search(corpus, query, limit=100):
            refs = [result] if result["kind"] == "entity" else [result["source"], result["target"]]
            for ref in refs:
                key = base64.urlsafe_b64decode(ref["id"] + "=" * (-len(ref["id"]) % 4)).decode()
                assert key in own, (query, ref)


def test_search_filters_by_type(corpus: Corpus) -> None:
    results = search(corpus, "Alice Acme Berlin Paris", types=["Place"], limit=50)
    assert results
    assert {r["name"] for r in results if r["kind"] == "entity"} <= {"Berlin", "Paris"}
    for fact in (r for r in results if r["kind"] == "fact"):
        assert "Place" in (fact["source"]["type"], fact["target"]["type"])


@pytest.mark.parametrize(
    "query",
    ["AND (", "OR", '"unclosed', "title:x", "\\", "*", "a~2 b^3", "[1 TO 5]", "!!", "/regex/", "x" * 500],
)
def test_lucene_syntax_is_plain_text(corpus: Corpus, query: str) -> None:
    search(corpus, query)


def test_search_rejects_bad_requests(corpus: Corpus) -> None:
    url = f"/api/v1/projects/{corpus.project}/search"
    for body in ({"query": ""}, {"query": "   \t"}, {"query": "x", "limit": 0}, {"query": "x", "limit": 101}):
        response = corpus.client.http.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    response = corpus.client.http.post(url, json={"query": "  "})
    assert [e["field"] for e in response.json()["errors"]] == ["query"]
    assert corpus.client.http.post(url, json={"query": "x", "extra": 1}).status_code == 422


def test_entity_with_facts_and_neighbours(corpus: Corpus) -> None:
    url = f"/api/v1/projects/{corpus.project}/entities"
    response = corpus.client.http.get(f"{url}/{entity_id('Acme Corp')}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entity"]["name"] == "Acme Corp"
    assert {(n["name"], n["distance"]) for n in body["neighbours"]} == {("Alice Smith", 1), ("Berlin", 1)}
    assert {f["name"] for f in body["facts"]} == {"WORKS_AT", "IN"}
    assert len(body["episodes"]) == 1
    deeper = corpus.client.http.get(f"{url}/{entity_id('Berlin')}", params={"depth": 2}).json()
    assert {(n["name"], n["distance"]) for n in deeper["neighbours"]} == {
        ("Acme Corp", 1),
        ("Alice Smith", 2),
    }
    bounded = corpus.client.http.get(f"{url}/{entity_id('Globex Corporation')}", params={"limit": 1}).json()
    assert len(bounded["neighbours"]) == 1
    assert bounded["truncated"] is True
    for bad in ("bm8gc3VjaA", "%21%21", entity_id("Initech Corp")):
        assert corpus.client.http.get(f"{url}/{bad}").status_code == 404
    assert corpus.client.http.get(f"{url}/{entity_id('Berlin')}", params={"depth": 3}).status_code == 422


def test_graph_export_is_bounded(corpus: Corpus, settings: Settings) -> None:
    url = f"/api/v1/projects/{corpus.project}/graph"
    full = corpus.client.http.get(url).json()
    entities = graph_query(
        settings, "MATCH (e:Entity {project_id: $p}) RETURN count(e) AS n", p=corpus.project
    )
    facts = graph_query(
        settings, "MATCH ()-[r:RELATES_TO {project_id: $p}]->() RETURN count(r) AS n", p=corpus.project
    )
    assert len(full["nodes"]) == full["total_nodes"] == entities[0]["n"]
    assert len(full["edges"]) == full["total_edges"] == facts[0]["n"]
    assert full["truncated"] is False
    node_ids = {n["id"] for n in full["nodes"]}
    assert all(e["source"] in node_ids and e["target"] in node_ids for e in full["edges"])
    small = corpus.client.http.get(url, params={"limit": 2}).json()
    assert len(small["nodes"]) == 2
    assert small["truncated"] is True
    assert small["nodes"][0]["degree"] >= small["nodes"][1]["degree"]
    assert corpus.client.http.get(url, params={"limit": 0}).status_code == 422


@pytest.mark.parametrize(
    "stamp", ["2025-06-01T10:30:00.123456+02:00", "0001-01-02T03:04:05-03:30", "9999-12-29T23:59:59.999999Z"]
)
def test_a_fact_is_valid_from_its_episodes_reference_time(corpus: Corpus, stamp: str) -> None:
    """The same instant in the entity read and in search, to the microsecond, at the ends of the range."""
    project = corpus.client.create_project()
    response = corpus.client.http.post(
        f"/api/v1/projects/{project}/episodes",
        json={"content": "Dora Quill works at Zeta Corp.", "reference_time": stamp},
    )
    assert response.status_code == 202, response.text
    corpus.client.wait_all(project, "completed", 1)
    expected = datetime.fromisoformat(stamp)
    read = corpus.client.http.get(f"/api/v1/projects/{project}/entities/{entity_id('Dora Quill')}").json()
    assert [(f["name"], datetime.fromisoformat(f["valid_at"])) for f in read["facts"]] == [
        ("WORKS_AT", expected)
    ]
    assert [f["invalid_at"] for f in read["facts"]] == [None]
    found = search(corpus, "Zeta", project=project)
    facts = [r for r in found if r["kind"] == "fact"]
    assert [datetime.fromisoformat(r["valid_at"]) for r in facts] == [expected]


def other_tenant_client(api: RunningApi, admin: Client) -> Client:
    tenant = admin.http.post("/api/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:10]}"})
    assert tenant.status_code == 201, tenant.text
    key = admin.http.post("/api/v1/keys", json={"name": "other", "tenant_id": tenant.json()["id"]})
    assert key.status_code == 201, key.text
    return Client(api.base_url, key.json()["key"])


def test_another_tenant_gets_404_on_every_new_route(
    corpus: Corpus, api: RunningApi, settings: Settings
) -> None:
    stranger = other_tenant_client(api, corpus.client)
    episode = next(iter(corpus.client.statuses(corpus.project)))
    base = f"/api/v1/projects/{corpus.project}"
    calls = [
        ("POST", f"{base}/search", {"query": "Alice"}),
        ("GET", f"{base}/entities/{entity_id('Acme Corp')}", None),
        ("GET", f"{base}/graph", None),
        ("DELETE", f"{base}/episodes/{episode}", None),
        ("DELETE", base, None),
    ]
    for method, url, body in calls:
        response = stranger.http.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
    # Nothing was touched: the owner still sees everything.
    assert corpus.client.http.get(f"{base}/episodes/{episode}").status_code == 200
    assert names(search(corpus, "Acme"), "entity")


def test_graph_reads_log_no_neo4j_warnings(corpus: Corpus, api: RunningApi) -> None:
    search(corpus, "Acme Berlin")
    corpus.client.http.get(f"/api/v1/projects/{corpus.project}/entities/{entity_id('Acme Corp')}")
    assert "Received notification from DBMS server" not in api.log()


def test_a_crowded_project_never_leaks_into_a_small_one(corpus: Corpus, settings: Settings) -> None:
    """The project filter is inside Lucene, before the procedures' `limit`: another project with
    far more (and better) hits for the same terms neither leaks in nor crowds out this one's."""
    small, crowded = corpus.client.create_project(), corpus.client.create_project()
    graph_query(
        settings,
        "UNWIND range(0, $n - 1) AS i "
        "WITH i, CASE WHEN i = 0 THEN $small ELSE $crowded END AS p "
        "CREATE (:Entity {uid: p + ':zebrafish ' + i, key: 'zebrafish ' + i, name: 'Zebrafish ' + i, "
        "type: 'Thing', summary: 'zebrafish zebrafish zebrafish', project_id: p, degree: 0})",
        n=400,
        small=small,
        crowded=crowded,
    )
    graph_query(
        settings,
        "MATCH (a:Entity {uid: $small + ':zebrafish 0'}) "
        "CREATE (a)-[:RELATES_TO {uid: $fact, name: 'SWIMS', fact: 'Zebrafish 0 swims', "
        "project_id: $small, support: 1}]->(a)",
        small=small,
        fact=uuid.uuid4().hex,
    )
    results = search(corpus, "zebrafish", project=small, limit=100)
    assert {(r["kind"], r["name"]) for r in results} == {("entity", "Zebrafish 0"), ("fact", "SWIMS")}
    for hostile in (
        f'project_id:"{crowded}" zebrafish',
        f"project_id:{crowded}",
        f") OR project_id:({crowded}",
    ):
        names_ = {r["name"] for r in search(corpus, hostile, project=small, limit=100)}
        assert names_ <= {"Zebrafish 0", "SWIMS"}, hostile
    # The project id is not searchable text: querying one's own id finds nothing.
    assert search(corpus, small, project=small) == []
    assert len(search(corpus, "zebrafish", project=crowded, limit=100)) == 100
