"""The deterministic extractor's documented rules, one at a time (see service/memory/extractor.py)."""

from __future__ import annotations

from service.memory.extractor import MAX_SUMMARY, DeterministicExtractor

extract = DeterministicExtractor().extract


def names(text: str) -> list[tuple[str, str]]:
    return [(e.name, e.type) for e in extract(text).entities]


def relations(text: str) -> list[tuple[str, str, str]]:
    return [(f.source, f.name, f.target) for f in extract(text).facts]


def test_urls_lose_trailing_punctuation_and_emails_are_whole() -> None:
    assert names("See https://example.com/a). Then mail bob@example.org.") == [
        ("https://example.com/a", "URL"),
        ("bob@example.org", "Email"),
    ]


def test_leading_function_words_are_dropped_from_a_phrase() -> None:
    assert names("The Acme Corp hired Zoe.") == [("Acme Corp", "Organization"), ("Zoe", "Name")]
    assert relations("The Acme Corp hired Zoe.") == [("Acme Corp", "HIRED", "Zoe")]


def test_a_place_follows_in_or_from() -> None:
    # "Zoe" opens the sentence alone and is not seen mid-sentence: not an entity.
    assert names("Zoe moved from Paris to Rome.") == [("Paris", "Place"), ("Rome", "Name")]


def test_connectors_join_capitalised_words() -> None:
    text = "Marks & Spencer sold Bank of England bonds."
    assert names(text) == [("Marks & Spencer", "Name"), ("Bank of England", "Organization")]
    assert relations(text) == [("Marks & Spencer", "SOLD", "Bank of England")]


def test_a_phrase_is_at_most_six_words() -> None:
    assert names("Anna Maria Louisa Theresa Karla Sofia Bergmann came.") == [
        ("Anna Maria Louisa Theresa Karla Sofia", "Name"),
        ("Bergmann", "Name"),
    ]


def test_a_listing_conjunction_names_no_relation() -> None:
    assert relations("Alice Smith and Bob Jones met in Rome.") == [("Bob Jones", "MET_IN", "Rome")]


def test_more_than_six_words_between_make_no_fact() -> None:
    assert relations("Alice Smith quietly and rather reluctantly decided to go visit Bob Jones.") == []


def test_an_entity_is_never_related_to_itself() -> None:
    assert relations("Alice Smith met Alice Smith.") == []


def test_a_semicolon_separates_entities() -> None:
    assert relations("Alice works at Acme; Bob Jones stayed.") == []


def test_a_summary_is_the_first_sentence_cut_to_its_limit() -> None:
    entities = extract("Quinn wrote: " + "word " * 60 + "Quinn Ltd.").entities
    assert [(e.name, e.type) for e in entities] == [("Quinn", "Name"), ("Quinn Ltd", "Organization")]
    assert {len(e.summary) for e in entities} == {MAX_SUMMARY}
