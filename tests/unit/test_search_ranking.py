"""Search ranking without a database: normalised BM25 per kind plus the neighbourhood bonus."""

from __future__ import annotations

from typing import Any

import pytest

from service.memory.search import MAX_TERMS, NEIGHBOUR_WEIGHT, SEEDS, lucene_query, rank, seed_uids
from service.stores.graph_reads import entity_id


def node(name: str, type_: str = "Name") -> dict[str, Any]:
    key = name.casefold()
    return {"uid": f"p:{key}", "key": key, "name": name, "type": type_, "summary": f"about {name}"}


def entity_hit(name: str, score: float, type_: str = "Name") -> dict[str, Any]:
    return {**node(name, type_), "score": score}


def fact(uid: str, source: dict[str, Any], target: dict[str, Any], name: str = "KNOWS") -> dict[str, Any]:
    ends = (
        {k: v for k, v in source.items() if k != "summary"},
        {k: v for k, v in target.items() if k != "summary"},
    )
    return {"uid": uid, "name": name, "fact": f"{source['name']} {name} {target['name']}", "valid_at": None,
            "source": ends[0], "target": ends[1]}  # fmt: skip


def neighbour(seed: str, other: dict[str, Any], rel: dict[str, Any]) -> dict[str, Any]:
    return {"seed": f"p:{seed.casefold()}", "neighbour": other,
            "rel": {k: rel[k] for k in ("uid", "name", "fact", "valid_at")},
            "source": rel["source"], "target": rel["target"]}  # fmt: skip


def test_scores_are_relative_to_the_best_hit_of_each_kind() -> None:
    alice, bob = node("Alice"), node("Bob")
    facts = [{**fact("f1", alice, bob), "score": 4.0}, {**fact("f2", bob, alice), "score": 1.0}]
    results = rank([entity_hit("Alice", 8.0), entity_hit("Bob", 2.0)], facts, [], None, 10)
    assert [(r.kind, r.name, r.score, r.matched) for r in results] == [
        ("entity", "Alice", 1.0, "text"),
        ("fact", "KNOWS", 1.0, "text"),
        ("entity", "Bob", 0.25, "text"),
        ("fact", "KNOWS", 0.25, "text"),
    ]
    assert results[0].id == entity_id("alice")
    assert results[1].id == "f1"
    assert results[1].source is not None
    assert results[1].source.id == entity_id("alice")


def test_neighbours_of_a_seed_get_half_its_text_score() -> None:
    alice, carol = node("Alice"), node("Carol", "Place")
    rel = fact("f9", alice, carol, "VISITED")
    results = rank([entity_hit("Alice", 5.0)], [], [neighbour("Alice", carol, rel)], None, 10)
    assert [(r.kind, r.name, r.score, r.matched) for r in results] == [
        ("entity", "Alice", 1.0, "text"),
        ("entity", "Carol", NEIGHBOUR_WEIGHT, "neighbourhood"),
        ("fact", "VISITED", NEIGHBOUR_WEIGHT, "neighbourhood"),
    ]


def test_a_text_hit_next_to_a_seed_rises_above_a_better_text_hit() -> None:
    alice, bob = node("Alice"), node("Bob")
    hits = [entity_hit("Alice", 10.0), entity_hit("Dave", 9.0), entity_hit("Bob", 6.0)]
    results = rank(hits, [], [neighbour("Alice", bob, fact("f1", alice, bob))], None, 3)
    assert [(r.name, r.score) for r in results] == [("Bob", 1.1), ("Alice", 1.0), ("Dave", 0.9)]


def test_types_keep_entities_of_those_types_and_facts_touching_one() -> None:
    alice, acme = node("Alice"), node("Acme", "Organization")
    facts = [{**fact("f1", alice, acme, "WORKS_AT"), "score": 1.0}]
    hits = [entity_hit("Alice", 2.0), entity_hit("Acme", 1.0, "Organization")]
    results = rank(hits, facts, [], ["Organization"], 10)
    assert [(r.kind, r.name) for r in results] == [("fact", "WORKS_AT"), ("entity", "Acme")]


def test_ties_break_on_name_then_id_and_limit_cuts() -> None:
    hits = [entity_hit("Cleo", 1.0), entity_hit("Abe", 1.0), entity_hit("Bea", 1.0)]
    assert [r.name for r in rank(hits, [], [], None, 2)] == ["Abe", "Bea"]


def test_only_the_best_entity_hits_are_seeds() -> None:
    hits = [entity_hit(f"E{i}", 10.0 - i) for i in range(SEEDS + 2)]
    assert seed_uids(hits) == [h["uid"] for h in hits[:SEEDS]]


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Alice AND Bob", "alice and bob"),
        ('name:"x" (y)', 'name\\:\\"x\\" \\(y\\)'),
        ("a/b*", "a\\/b\\*"),
        ("*** ???", None),
        ("   ", None),
    ],
)
def test_the_query_is_plain_lower_case_terms(text: str, query: str | None) -> None:
    assert lucene_query(text) == query


def test_the_query_keeps_at_most_max_terms() -> None:
    query = lucene_query(" ".join(f"t{i}" for i in range(MAX_TERMS + 10)))
    assert query is not None
    assert len(query.split()) == MAX_TERMS
