"""What an extractor produces from one episode's text, whichever extractor it is."""

from __future__ import annotations

from typing import Protocol

import msgspec


def entity_key(name: str) -> str:
    """What identifies an entity within a project: its name case-folded, spaces collapsed."""
    return " ".join(name.casefold().split())


class ExtractedEntity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    type: str = "Thing"
    summary: str = ""


class ExtractedFact(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A directed relation between two entities named in the same episode."""

    source: str
    target: str
    name: str
    fact: str


class Extraction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entities: list[ExtractedEntity] = msgspec.field(default_factory=list)
    facts: list[ExtractedFact] = msgspec.field(default_factory=list)


class ExtractionError(Exception):
    """The extractor could not produce a result; `transient` errors are retried."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class Extractor(Protocol):
    name: str

    def extract(self, text: str, *, project_id: str = "") -> Extraction:
        """`project_id` scopes anything the extractor keeps (the LLM cache) to the project."""
        ...
