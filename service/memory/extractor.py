"""The deterministic extractor: documented rules, no network, no model.

Entities, per sentence, in this order of precedence (a span is claimed once):
1. E-mail addresses                         -> type Email
2. http(s) URLs (trailing punctuation cut)  -> type URL
3. Double-quoted terms of 2-60 characters   -> type Concept
4. Proper-noun phrases: runs of capitalised words (or acronyms), which may be joined by
   of/de/van/von/der/del/da/di/du/la/le/& and are at most 6 words long. Leading function
   words (The, In, When, ...) are dropped. A single word that opens a sentence counts only
   when the same word is also capitalised somewhere mid-sentence in the episode (so
   "Yesterday" or "Working" are not entities, "Alice" is when she appears again).
   Its type: Organization when a word is a company/institution word (Inc, Corp, Ltd, LLC,
   GmbH, University, Bank, ...); Time for weekdays and months; Place when the word
   before it is "in" or "from"; Name otherwise.
An entity's key is its name case-folded with spaces collapsed; the first mention gives its
name, type and summary (the sentence it first appears in, at most 200 characters).

Facts: for two entities that follow each other in a sentence, the words between them
(at most 6, lower-cased, leading/trailing articles dropped) name the relation, upper-snake
cased: "Alice works at Acme" gives Alice -[WORKS_AT]-> Acme with the sentence as the fact.
Nothing is produced when they are only listed ("Alice, Bob and Carol"), when a semicolon
separates them, or when both are the same entity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from service.memory.extraction import ExtractedEntity, ExtractedFact, Extraction, entity_key

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_QUOTED = re.compile(r"[\"“]([^\"“”\n]{2,60})[\"”]")
_WORD = re.compile(r"[^\W\d_][\w'’&-]*|&")  # noqa: RUF001 (typographic apostrophe)
_RELATION_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")  # noqa: RUF001

_CONNECTORS = frozenset({"of", "de", "van", "von", "der", "del", "da", "di", "du", "la", "le", "&"})
_LEADING_STOPWORDS = frozenset(
    """a an the this that these those in on at by for from to of with when while after before during
    since until yesterday today tomorrow he she they we i it you our my his her their its your but and
    or so if then also however meanwhile there here what who why how where dear hi hello thanks
    later earlier now soon first next finally last""".split()
)
_ORG_SUFFIXES = frozenset(
    """inc corp corporation ltd llc gmbh ag sa plc company co group university institute foundation
    bank labs systems technologies agency ministry council""".split()
)
_TIME_WORDS = frozenset(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june
    july august september october november december""".split()
)
_PLACE_CUES = frozenset({"in", "from"})
_FILLERS = frozenset({"the", "a", "an"})
_LISTING = frozenset({"and", "or", "nor", "but"})
MAX_PHRASE_WORDS = 6
MAX_RELATION_WORDS = 6
MAX_SUMMARY = 200


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    name: str
    type: str

    @property
    def key(self) -> str:
        return entity_key(self.name)


def _is_capitalised(word: str) -> bool:
    return word[:1].isupper()


def _free(claimed: list[tuple[int, int]], start: int, end: int) -> bool:
    return all(end <= a or start >= b for a, b in claimed)


def _pattern_spans(sentence: str) -> list[_Span]:
    spans: list[_Span] = []
    claimed: list[tuple[int, int]] = []
    for pattern, kind in ((_EMAIL, "Email"), (_URL, "URL")):
        for match in pattern.finditer(sentence):
            text = match.group(0).rstrip(".,;:!?")
            end = match.start() + len(text)
            if _free(claimed, match.start(), end):
                spans.append(_Span(match.start(), end, text, kind))
                claimed.append((match.start(), end))
    for match in _QUOTED.finditer(sentence):
        inner = match.group(1).strip()
        if len(inner) >= 2 and _free(claimed, match.start(), match.end()):
            spans.append(_Span(match.start(1), match.end(1), inner, "Concept"))
            claimed.append((match.start(), match.end()))
    return spans


def _phrase_type(words: list[str], previous: str | None) -> str:
    last = words[-1].rstrip(".").casefold()
    if any(word.rstrip(".").casefold() in _ORG_SUFFIXES for word in words):
        return "Organization"
    if len(words) == 1 and last in _TIME_WORDS:
        return "Time"
    if previous in _PLACE_CUES:
        return "Place"
    return "Name"


def _phrase_spans(sentence: str, taken: list[_Span], known_names: frozenset[str]) -> list[_Span]:
    words = list(_WORD.finditer(sentence))
    claimed = [(s.start, s.end) for s in taken]
    spans: list[_Span] = []
    i = 0
    while i < len(words):
        if not _is_capitalised(words[i].group(0)) or not _free(claimed, words[i].start(), words[i].end()):
            i += 1
            continue
        j = i + 1
        while j < len(words) and j - i < MAX_PHRASE_WORDS:
            word = words[j].group(0)
            gap = sentence[words[j - 1].end() : words[j].start()]
            if gap.strip() or not _free(claimed, words[j].start(), words[j].end()):
                break
            if _is_capitalised(word):
                j += 1
            elif (
                word.casefold() in _CONNECTORS
                and j + 1 < len(words)
                and _is_capitalised(words[j + 1].group(0))
            ):
                j += 2
            else:
                break
        run = words[i:j]
        first = i
        while run and run[0].group(0).casefold() in _LEADING_STOPWORDS:
            run = run[1:]
            first += 1
        while run and run[-1].group(0).casefold() in _CONNECTORS:
            run = run[:-1]
        if run:
            opens_sentence = first == 0
            single = len(run) == 1
            text = sentence[run[0].start() : run[-1].end()]
            if not (opens_sentence and single and text not in known_names and not text.isupper()):
                previous = words[first - 1].group(0).casefold() if first > 0 else None
                spans.append(
                    _Span(
                        run[0].start(), run[-1].end(), text, _phrase_type([w.group(0) for w in run], previous)
                    )
                )
        i = max(j, i + 1)
    return spans


def _mid_sentence_capitalised(sentences: list[str]) -> frozenset[str]:
    found: set[str] = set()
    for sentence in sentences:
        for match in list(_WORD.finditer(sentence))[1:]:
            if _is_capitalised(match.group(0)):
                found.add(match.group(0))
    return frozenset(found)


def _relation(between: str) -> str | None:
    if ";" in between:
        return None
    words = _RELATION_WORD.findall(between.casefold())
    while words and words[0] in _FILLERS:
        words = words[1:]
    while words and words[-1] in _FILLERS:
        words = words[:-1]
    if not words or len(words) > MAX_RELATION_WORDS or all(w in _LISTING for w in words):
        return None
    return "_".join(words).upper().replace("’", "'")  # noqa: RUF001


class DeterministicExtractor:
    name = "deterministic"

    def extract(self, text: str, *, project_id: str = "") -> Extraction:
        sentences = [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]
        known = _mid_sentence_capitalised(sentences)
        entities: dict[str, ExtractedEntity] = {}
        facts: dict[tuple[str, str, str], ExtractedFact] = {}
        for sentence in sentences:
            spans = _pattern_spans(sentence)
            spans += _phrase_spans(sentence, spans, known)
            spans.sort(key=lambda s: s.start)
            for span in spans:
                if span.key not in entities:
                    entities[span.key] = ExtractedEntity(
                        name=span.name, type=span.type, summary=sentence[:MAX_SUMMARY]
                    )
            for left, right in pairwise(spans):
                relation = _relation(sentence[left.end : right.start])
                if relation is None or left.key == right.key:
                    continue
                source, target = entities[left.key].name, entities[right.key].name
                facts.setdefault(
                    (left.key, relation, right.key), ExtractedFact(source, target, relation, sentence)
                )
        return Extraction(entities=list(entities.values()), facts=list(facts.values()))
