"""Optional extractor (`LLM_PROVIDER=openai-compatible`): entities and facts from a chat model.

One `POST {LLM_BASE_URL}/chat/completions` per episode text (JSON mode, temperature 0),
asking for `{"entities": [{name, type, summary}], "facts": [{source, target, name, fact}]}`.
The answer is validated with msgspec; entities are de-duplicated by name (case and spacing
ignored), facts whose endpoints are not among the entities are dropped, relation names are
UPPER_SNAKE_CASE like the deterministic extractor's.

Results are cached in Redis under `memstack:llm:<project id>:<sha256(model, prompt version,
text)>` for `LLM_CACHE_TTL` seconds when `LLM_CACHE_ENABLED`: a retried job or a re-sent
episode does not pay for the model twice. Entries are per project, so deleting a project can
erase them (`erase_project_cache`) and one tenant cannot learn from a cache hit that another
sent the same text. A cache outage only costs the cache.

Failures never crash the worker; they raise `ExtractionError`:
- transient (retried with backoff): timeouts (`LLM_TIMEOUT` bounds the whole exchange),
  connection errors, HTTP 408/409/429 and 5xx;
- permanent (the episode fails with the reason): other HTTP errors (bad key, unknown model),
  answers that are not JSON, do not follow the schema or were cut off.
Reasons name the status or the problem, never the API key or the response body.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Annotated

import httpx
import msgspec
import redis
from loguru import logger
from msgspec import Meta

from service.memory.extraction import ExtractedEntity, ExtractedFact, Extraction, ExtractionError, entity_key
from service.settings import Settings

PROMPT_VERSION = "1"
CACHE_PREFIX = "memstack:llm:"
MAX_ENTITIES = 100
MAX_FACTS = 200
MAX_ANSWER_BYTES = 2_000_000
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})

SYSTEM_PROMPT = """You extract a knowledge graph from one text.
Answer with a single JSON object and nothing else, in exactly this shape:
{"entities": [{"name": "...", "type": "...", "summary": "..."}],
 "facts": [{"source": "...", "target": "...", "name": "...", "fact": "..."}]}
Rules:
- entities: the people, organizations, places, products, concepts and dates the text names;
  "name" as written in the text, "type" one word (Person, Organization, Place, Product,
  Concept, Event, Time, ...), "summary" one short sentence from the text about it.
- facts: relations the text states between two of those entities; "source" and "target"
  are entity names exactly as in "entities", "name" is the relation in UPPER_SNAKE_CASE
  (e.g. WORKS_AT), "fact" is the statement in one sentence.
- Use only what the text says. If there is nothing, answer {"entities": [], "facts": []}."""

Name = Annotated[str, Meta(min_length=1, max_length=300)]
Text = Annotated[str, Meta(max_length=2000)]


class _Entity(msgspec.Struct, frozen=True):
    name: Name
    type: Annotated[str, Meta(max_length=100)] | None = None
    summary: Text | None = None


class _Fact(msgspec.Struct, frozen=True):
    source: Name
    target: Name
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    fact: Text = ""


class _Answer(msgspec.Struct, frozen=True):
    """What the model must produce; unknown extra keys are tolerated, wrong types are not."""

    entities: list[_Entity] = msgspec.field(default_factory=list)
    facts: list[_Fact] = msgspec.field(default_factory=list)


class _Message(msgspec.Struct, frozen=True):
    content: str | None = None


class _Choice(msgspec.Struct, frozen=True):
    message: _Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct, frozen=True):
    choices: list[_Choice]


class _ErrorBody(msgspec.Struct, frozen=True):
    error: dict[str, object] | str | None = None


def _relation_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").upper()


def _first_error(exc: msgspec.ValidationError) -> str:
    return str(exc).splitlines()[0][:200]


def parse_answer(content: str) -> Extraction:
    """The model's JSON text -> a clean Extraction; raises a permanent ExtractionError."""
    text = content.strip()
    if text.startswith("```"):  # some servers fence JSON even in JSON mode
        text = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", text)
    try:
        answer = msgspec.json.decode(text, type=_Answer)
    except msgspec.ValidationError as exc:
        raise ExtractionError(
            f"LLM answer does not match the schema: {_first_error(exc)}", transient=False
        ) from None
    except msgspec.DecodeError:
        raise ExtractionError("LLM answer is not valid JSON", transient=False) from None
    entities: dict[str, ExtractedEntity] = {}
    for item in answer.entities:
        name = " ".join(item.name.split())
        if name and entity_key(name) not in entities and len(entities) < MAX_ENTITIES:
            entities[entity_key(name)] = ExtractedEntity(
                name=name,
                type=(item.type or "Thing").strip() or "Thing",
                summary=(item.summary or "").strip(),
            )
    facts: list[ExtractedFact] = []
    seen: set[tuple[str, str, str]] = set()
    for fact in answer.facts:
        source, target = entities.get(entity_key(fact.source)), entities.get(entity_key(fact.target))
        relation = _relation_name(fact.name)
        if source is None or target is None or source is target or not relation:
            continue
        identity = (entity_key(source.name), entity_key(target.name), relation)
        if identity in seen or len(facts) >= MAX_FACTS:
            continue
        seen.add(identity)
        facts.append(ExtractedFact(source.name, target.name, relation, fact.fact.strip()))
    return Extraction(entities=list(entities.values()), facts=facts)


class LlmExtractor:
    """`Extractor` over an OpenAI-compatible chat-completions endpoint (synchronous, for the worker)."""

    name = "llm"

    def __init__(
        self,
        settings: Settings,
        cache: redis.Redis | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not settings.llm_base_url or not settings.llm_model:
            raise ValueError("LLM_BASE_URL and LLM_MODEL are required for the LLM extractor")
        self.model = settings.llm_model
        self.timeout = settings.llm_timeout
        self.url = settings.llm_base_url.rstrip("/") + "/chat/completions"
        self.cache = cache if settings.llm_cache_enabled else None
        self.cache_ttl = settings.llm_cache_ttl
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.llm_api_key:
            headers["Authorization"] = f"Bearer {settings.llm_api_key}"
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(self.timeout), transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def cache_key(self, text: str, project_id: str = "") -> str:
        digest = hashlib.sha256("\0".join((self.model, PROMPT_VERSION, text)).encode("utf-8")).hexdigest()
        return f"{CACHE_PREFIX}{project_id}:{digest}" if project_id else CACHE_PREFIX + digest

    def extract(self, text: str, *, project_id: str = "") -> Extraction:
        """Entities and facts of `text`; pass `project_id` so the cache entry is erasable with the project."""
        key = self.cache_key(text, project_id)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        extraction = parse_answer(self._complete(text))
        self._cache_put(key, extraction)
        return extraction

    def _request_body(self, text: str) -> bytes:
        return msgspec.json.encode(
            {
                "model": self.model,
                "temperature": 0,
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": text},
                ],
            }
        )

    def _complete(self, text: str) -> str:
        """One chat completion within `LLM_TIMEOUT` overall; returns the message content."""
        deadline = time.monotonic() + self.timeout
        try:
            with self._client.stream("POST", self.url, content=self._request_body(text)) as response:
                if response.status_code != 200:
                    raise self._status_error(response)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise ExtractionError("LLM answer is larger than 2 MB", transient=False)
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("overall deadline")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise ExtractionError(f"LLM request timed out after {self.timeout:g}s", transient=True) from None
        except httpx.TransportError as exc:
            raise ExtractionError(
                f"LLM endpoint unreachable ({type(exc).__name__})", transient=True
            ) from None
        try:
            completion = msgspec.json.decode(b"".join(chunks), type=_Completion)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise ExtractionError("LLM endpoint answer is not a chat completion", transient=False) from None
        if not completion.choices or completion.choices[0].message.content is None:
            raise ExtractionError("LLM endpoint answered without a message", transient=False)
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            raise ExtractionError("LLM answer was cut off (finish_reason=length)", transient=False)
        assert choice.message.content is not None
        return choice.message.content

    @staticmethod
    def _status_error(response: httpx.Response) -> ExtractionError:
        status = response.status_code
        code = ""
        try:
            body = msgspec.json.decode(response.read()[:65_536], type=_ErrorBody)
            if isinstance(body.error, dict):
                # only short identifiers: messages may quote a (partly masked) key
                for field in ("type", "code"):
                    value = body.error.get(field)
                    if isinstance(value, str) and re.fullmatch(r"[\w.-]{1,64}", value):
                        code = f", {value}"
                        break
        except (msgspec.DecodeError, msgspec.ValidationError, httpx.HTTPError):
            pass
        transient = status >= 500 or status in TRANSIENT_STATUSES
        reason = f"LLM endpoint answered HTTP {status} {response.reason_phrase}{code}".rstrip()
        return ExtractionError(reason, transient=transient)

    def _cache_get(self, key: str) -> Extraction | None:
        if self.cache is None:
            return None
        try:
            raw = self.cache.get(key)
        except redis.RedisError as exc:
            logger.warning("LLM cache unavailable ({error}); calling the model", error=type(exc).__name__)
            return None
        if not isinstance(raw, bytes | str):
            return None
        try:
            return msgspec.json.decode(raw, type=Extraction)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # written by an older version: overwritten below

    def _cache_put(self, key: str, extraction: Extraction) -> None:
        if self.cache is None:
            return
        try:
            self.cache.set(key, msgspec.json.encode(extraction), ex=self.cache_ttl)
        except redis.RedisError as exc:
            logger.warning("LLM cache unavailable ({error}); result not cached", error=type(exc).__name__)


def erase_project_cache(client: redis.Redis, project_id: str, batch: int = 500) -> int:
    """Delete a project's cached extractions (SCAN + UNLINK in batches); returns how many."""
    if not project_id or "*" in project_id or "?" in project_id or "[" in project_id:
        raise ValueError("a literal project id is required")
    removed = 0
    keys: list[bytes | str] = []
    for key in client.scan_iter(match=f"{CACHE_PREFIX}{project_id}:*", count=batch):
        keys.append(key)
        if len(keys) >= batch:
            removed += int(client.unlink(*keys))
            keys.clear()
    if keys:
        removed += int(client.unlink(*keys))
    return removed


def create_extractor(settings: Settings, cache: redis.Redis | None) -> LlmExtractor | None:
    """The LLM extractor when `LLM_PROVIDER=openai-compatible`, else None (use the deterministic one)."""
    if settings.llm_provider != "openai-compatible":
        return None
    return LlmExtractor(settings, cache)
