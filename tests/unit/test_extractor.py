"""The deterministic extractor on sample texts, with the exact entities and facts expected."""

from __future__ import annotations

from service.memory.extraction import ExtractedEntity, ExtractedFact, entity_key
from service.memory.extractor import DeterministicExtractor

extract = DeterministicExtractor().extract


def names(text: str) -> list[tuple[str, str]]:
    return [(e.name, e.type) for e in extract(text).entities]


def relations(text: str) -> list[tuple[str, str, str]]:
    return [(f.source, f.name, f.target) for f in extract(text).facts]


KNOWN_TEXT = 'Alice Smith works at Acme Corp in Berlin. Yesterday Alice met Bob Jones at the "Quantum Lab".'


def test_known_text_gives_exactly_these_entities_and_facts() -> None:
    result = extract(KNOWN_TEXT)
    assert result.entities == [
        ExtractedEntity("Alice Smith", "Name", "Alice Smith works at Acme Corp in Berlin."),
        ExtractedEntity("Acme Corp", "Organization", "Alice Smith works at Acme Corp in Berlin."),
        ExtractedEntity("Berlin", "Place", "Alice Smith works at Acme Corp in Berlin."),
        ExtractedEntity("Alice", "Name", 'Yesterday Alice met Bob Jones at the "Quantum Lab".'),
        ExtractedEntity("Bob Jones", "Name", 'Yesterday Alice met Bob Jones at the "Quantum Lab".'),
        ExtractedEntity("Quantum Lab", "Concept", 'Yesterday Alice met Bob Jones at the "Quantum Lab".'),
    ]
    assert result.facts == [
        ExtractedFact("Alice Smith", "Acme Corp", "WORKS_AT", "Alice Smith works at Acme Corp in Berlin."),
        ExtractedFact("Acme Corp", "Berlin", "IN", "Alice Smith works at Acme Corp in Berlin."),
        ExtractedFact("Alice", "Bob Jones", "MET", 'Yesterday Alice met Bob Jones at the "Quantum Lab".'),
        ExtractedFact(
            "Bob Jones", "Quantum Lab", "AT", 'Yesterday Alice met Bob Jones at the "Quantum Lab".'
        ),
    ]


def test_emails_urls_organizations_and_months() -> None:
    text = (
        "Contact ops@example.com or see https://example.com/docs. "
        "The University of Oxford hired Carol Diaz in March."
    )
    assert names(text) == [
        ("ops@example.com", "Email"),
        ("https://example.com/docs", "URL"),
        ("University of Oxford", "Organization"),
        ("Carol Diaz", "Name"),
        ("March", "Time"),
    ]
    assert relations(text) == [
        ("ops@example.com", "OR_SEE", "https://example.com/docs"),
        ("University of Oxford", "HIRED", "Carol Diaz"),
        ("Carol Diaz", "IN", "March"),
    ]


def test_sentence_initial_words_are_not_entities_unless_seen_mid_sentence() -> None:
    assert names("Working late is common. Yesterday it rained.") == []
    assert names("Dana called. Then we phoned Dana.") == [("Dana", "Name")]
    assert names("NASA launched it.") == [("NASA", "Name")]


def test_listed_entities_make_no_facts() -> None:
    text = "We invited Erin, Frank and Grace to Lisbon; Heidi stayed."
    assert names(text) == [
        ("Erin", "Name"),
        ("Frank", "Name"),
        ("Grace", "Name"),
        ("Lisbon", "Name"),
        ("Heidi", "Name"),
    ]
    # Listed names are not related; the semicolon separates Lisbon from Heidi.
    assert relations(text) == [("Grace", "TO", "Lisbon")]


def test_repeated_mentions_are_one_entity_and_keys_are_case_folded() -> None:
    result = extract("Ivan joined Globex Inc. Later Ivan left GLOBEX INC.")
    assert [e.name for e in result.entities] == ["Ivan", "Globex Inc"]
    assert [(f.source, f.name, f.target) for f in result.facts] == [
        ("Ivan", "JOINED", "Globex Inc"),
        ("Ivan", "LEFT", "Globex Inc"),
    ]
    assert entity_key("  Globex   Inc ") == entity_key("globex inc")


def test_empty_and_plain_text_give_nothing() -> None:
    assert extract("").entities == []
    assert extract("nothing capitalised here at all").facts == []


def test_extraction_is_deterministic() -> None:
    assert extract(KNOWN_TEXT) == extract(KNOWN_TEXT)
