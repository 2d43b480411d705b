"""The LLM answer parser: the model's JSON text in, a clean Extraction (or a permanent error) out."""

from __future__ import annotations

import json

import pytest

from service.memory.extraction import ExtractedEntity, ExtractedFact, ExtractionError
from service.memory.llm_extractor import MAX_FACTS, parse_answer


def test_a_fenced_answer_is_unwrapped() -> None:
    answer = parse_answer('```json\n{"entities": [{"name": "A"}]}\n```')
    assert answer.entities == [ExtractedEntity("A", "Thing", "")]
    assert answer.facts == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "LLM answer is not valid JSON"),
        (
            '{"entities": [{"name": 3}]}',
            "LLM answer does not match the schema: Expected `str`, got `int` - at `$.entities[0].name`",
        ),
    ],
)
def test_a_bad_answer_is_a_permanent_error(content: str, reason: str) -> None:
    with pytest.raises(ExtractionError) as caught:
        parse_answer(content)
    assert caught.value.reason == reason
    assert not caught.value.transient


def test_entities_are_one_per_key_and_facts_need_two_distinct_known_ends() -> None:
    answer = {
        "entities": [
            {"name": "Acme  Corp", "type": " Organization "},
            {"name": "acme corp"},
            {"name": "Bob"},
        ],
        "facts": [
            {"source": "ACME CORP", "target": "bob", "name": "works with", "fact": " x "},
            {"source": "Acme Corp", "target": "Bob", "name": "WORKS-WITH"},  # the same fact again
            {"source": "Acme Corp", "target": "Nobody", "name": "KNOWS"},  # unknown end
            {"source": "Bob", "target": "bob", "name": "IS"},  # one entity
            {"source": "Bob", "target": "Acme Corp", "name": "!!!"},  # no relation name left
        ],
    }
    parsed = parse_answer(json.dumps(answer))
    assert parsed.entities == [
        ExtractedEntity("Acme Corp", "Organization", ""),
        ExtractedEntity("Bob", "Thing", ""),
    ]
    assert parsed.facts == [ExtractedFact("Acme Corp", "Bob", "WORKS_WITH", "x")]


def test_facts_are_capped() -> None:
    entities = [{"name": f"E{i}"} for i in range(30)]
    facts = [
        {"source": f"E{i}", "target": f"E{j}", "name": "R"} for i in range(30) for j in range(30) if i != j
    ]
    assert len(parse_answer(json.dumps({"entities": entities, "facts": facts})).facts) == MAX_FACTS
