"""The LLM extractor against a local chat-completions server, with the real Redis as its cache."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import msgspec
import pytest
import redis

from service.memory.extraction import ExtractedEntity, ExtractedFact, ExtractionError, Extractor
from service.memory.llm_extractor import (
    CACHE_PREFIX,
    LlmExtractor,
    create_extractor,
    erase_project_cache,
    parse_answer,
)
from service.settings import Settings
from service.stores.redis import create_sync_redis
from tests.support.stack import free_port

API_KEY = "sk-test-0123456789-very-secret"
GOOD = {
    "entities": [
        {"name": "Alice", "type": "Person", "summary": "Alice is an engineer.", "confidence": 0.9},
        {"name": "Acme  Corp", "type": "Organization", "summary": "A company."},
        {"name": "alice", "type": "Person", "summary": "duplicate, dropped"},
    ],
    "facts": [
        {"source": "alice", "target": "Acme Corp", "name": "works at", "fact": "Alice works at Acme Corp."},
        {"source": "Alice", "target": "Bob", "name": "KNOWS", "fact": "Bob is not an entity: dropped."},
        {"source": "Alice", "target": "Alice", "name": "IS", "fact": "Self loops are dropped."},
    ],
}


def completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
    }


@dataclass
class FakeLlm:
    """A chat-completions server; the first path segment of the base URL picks the behaviour."""

    port: int
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def base_url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}/v1"

    def hits(self, scenario: str) -> int:
        return sum(1 for name, _, _ in self.requests if name == scenario)


def make_handler(state: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            scenario, _, rest = self.path.strip("/").partition("/")
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append((scenario, dict(self.headers.items()), request))
            if rest != "v1/chat/completions":
                self.reply(404, b'{"error": {"message": "no such route", "type": "not_found"}}')
                return
            answers: dict[str, tuple[int, Any]] = {
                "good": (200, completion(json.dumps(GOOD))),
                "fenced": (200, completion("```json\n" + json.dumps(GOOD) + "\n```")),
                "malformed": (200, completion('{"entities": [{"name": "Alice"')),
                "schema": (200, completion(json.dumps({"entities": "Alice, Acme", "facts": []}))),
                "noname": (200, completion(json.dumps({"entities": [{"type": "Person"}]}))),
                "truncated": (200, completion('{"entities": []}', finish_reason="length")),
                "error500": (500, {"error": {"message": "upstream exploded", "type": "server_error"}}),
                "ratelimited": (429, {"error": {"message": "slow down", "type": "rate_limit"}}),
                "unauthorized": (
                    401,
                    {
                        "error": {
                            "message": f"Incorrect API key provided: {API_KEY}",
                            "code": "invalid_api_key",
                        }
                    },
                ),
            }
            if scenario == "slow":
                time.sleep(3)
                scenario = "good"
            if scenario == "html":
                self.reply(200, b"<html>proxy login</html>", "text/html")
                return
            status, payload = answers[scenario]
            self.reply(status, json.dumps(payload).encode())

    return Handler


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    port = free_port()
    state = FakeLlm(port)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def cache(settings: Settings) -> Iterator[redis.Redis]:
    client = create_sync_redis(settings)
    try:
        yield client
    finally:
        client.close()


def llm_settings(base: Settings, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_provider": "openai-compatible",
        "llm_base_url": url,
        "llm_model": "test-model",
        "llm_api_key": API_KEY,
        "llm_timeout": 2.0,
        "llm_cache_enabled": False,
        **overrides,
    }
    return msgspec.structs.replace(base, **values)


class MakeExtractor(Protocol):
    def __call__(
        self, base: Settings, fake: FakeLlm, scenario: str, cache: redis.Redis | None = None, **kw: Any
    ) -> LlmExtractor: ...


@pytest.fixture
def extractor() -> Iterator[MakeExtractor]:
    """Makes extractors for a scenario of the fake server, and closes their HTTP clients after the test."""
    made: list[LlmExtractor] = []

    def make(
        base: Settings, fake: FakeLlm, scenario: str, cache: redis.Redis | None = None, **kw: Any
    ) -> LlmExtractor:
        made.append(LlmExtractor(llm_settings(base, fake.base_url(scenario), **kw), cache))
        return made[-1]

    yield make
    for llm in made:
        llm.close()


def unique_text() -> str:
    return f"Alice works at Acme Corp. ({uuid.uuid4().hex})"


def test_good_answer_is_validated_and_cleaned(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor
) -> None:
    llm: Extractor = extractor(settings, fake_llm, "good")
    result = llm.extract(unique_text())
    assert result.entities == [
        ExtractedEntity("Alice", "Person", "Alice is an engineer."),
        ExtractedEntity("Acme Corp", "Organization", "A company."),
    ]
    assert result.facts == [ExtractedFact("Alice", "Acme Corp", "WORKS_AT", "Alice works at Acme Corp.")]

    _, headers, body = fake_llm.requests[-1]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert body["model"] == "test-model"
    assert body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"].startswith("Alice works at Acme Corp.")
    assert '"entities"' in body["messages"][0]["content"]


def test_no_authorization_header_without_a_key(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor
) -> None:
    extractor(settings, fake_llm, "good", llm_api_key="").extract(unique_text())
    _, headers, _ = fake_llm.requests[-1]
    assert "Authorization" not in headers


def test_fenced_json_is_accepted(settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor) -> None:
    assert len(extractor(settings, fake_llm, "fenced").extract(unique_text()).facts) == 1


@pytest.mark.parametrize(
    ("scenario", "transient", "reason"),
    [
        ("malformed", False, "not valid JSON"),
        ("schema", False, "does not match the schema"),
        ("noname", False, "does not match the schema"),
        ("truncated", False, "cut off"),
        ("html", False, "not a chat completion"),
        ("error500", True, "HTTP 500"),
        ("ratelimited", True, "HTTP 429"),
        ("unauthorized", False, "HTTP 401 Unauthorized, invalid_api_key"),
        ("slow", True, "timed out after 0.5s"),
    ],
)
def test_failures_are_extraction_errors(
    settings: Settings,
    fake_llm: FakeLlm,
    extractor: MakeExtractor,
    scenario: str,
    transient: bool,
    reason: str,
) -> None:
    llm = extractor(settings, fake_llm, scenario, llm_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ExtractionError) as caught:
        llm.extract(unique_text())
    assert time.monotonic() - started < 2.5
    assert caught.value.transient is transient
    assert reason in caught.value.reason
    assert API_KEY not in caught.value.reason
    assert API_KEY not in str(caught.value)


def test_unreachable_endpoint_is_transient(settings: Settings) -> None:
    with (
        closing(LlmExtractor(llm_settings(settings, f"http://127.0.0.1:{free_port()}/v1"))) as llm,
        pytest.raises(ExtractionError) as caught,
    ):
        llm.extract("Alice works at Acme Corp.")
    assert caught.value.transient
    assert "unreachable" in caught.value.reason


def test_cache_hit_skips_the_model_and_sets_a_ttl(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor, cache: redis.Redis
) -> None:
    llm = extractor(settings, fake_llm, "good", cache, llm_cache_enabled=True, llm_cache_ttl=120)
    text = unique_text()
    before = fake_llm.hits("good")
    first = llm.extract(text)
    second = llm.extract(text)
    assert first == second
    assert fake_llm.hits("good") == before + 1
    key = llm.cache_key(text)
    assert key.startswith(CACHE_PREFIX)
    assert 0 < cache.ttl(key) <= 120
    # another model (or prompt version) is another entry
    other = extractor(settings, fake_llm, "good", cache, llm_cache_enabled=True, llm_model="other-model")
    assert other.cache_key(text) != key
    other.extract(text)
    assert fake_llm.hits("good") == before + 2
    cache.delete(key, other.cache_key(text))


def test_cache_entries_are_per_project_and_erasable(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor, cache: redis.Redis
) -> None:
    llm = extractor(settings, fake_llm, "good", cache, llm_cache_enabled=True)
    project, other = str(uuid.uuid4()), str(uuid.uuid4())
    texts = [unique_text() for _ in range(3)]
    before = fake_llm.hits("good")
    for text in texts:
        llm.extract(text, project_id=project)
    llm.extract(texts[0], project_id=other)
    assert fake_llm.hits("good") == before + 4  # no sharing across projects
    llm.extract(texts[0], project_id=project)
    assert fake_llm.hits("good") == before + 4
    assert llm.cache_key(texts[0], project).startswith(f"{CACHE_PREFIX}{project}:")

    assert erase_project_cache(cache, project, batch=2) == 3
    assert not list(cache.scan_iter(match=f"{CACHE_PREFIX}{project}:*"))
    assert cache.exists(llm.cache_key(texts[0], other)) == 1
    assert erase_project_cache(cache, other) == 1
    with pytest.raises(ValueError, match="literal"):
        erase_project_cache(cache, "*")


def test_cache_disabled_always_asks(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor, cache: redis.Redis
) -> None:
    llm = extractor(settings, fake_llm, "good", cache, llm_cache_enabled=False)
    text = unique_text()
    before = fake_llm.hits("good")
    llm.extract(text)
    llm.extract(text)
    assert fake_llm.hits("good") == before + 2
    assert cache.exists(llm.cache_key(text)) == 0


def test_failures_are_not_cached(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor, cache: redis.Redis
) -> None:
    llm = extractor(settings, fake_llm, "malformed", cache, llm_cache_enabled=True)
    text = unique_text()
    for _ in range(2):
        with pytest.raises(ExtractionError):
            llm.extract(text)
    assert cache.exists(llm.cache_key(text)) == 0


def test_cache_outage_only_costs_the_cache(
    settings: Settings, fake_llm: FakeLlm, extractor: MakeExtractor
) -> None:
    with redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5) as dead:
        llm = extractor(settings, fake_llm, "good", dead, llm_cache_enabled=True)
        assert len(llm.extract(unique_text()).entities) == 2


def test_factory_follows_the_provider(settings: Settings, fake_llm: FakeLlm) -> None:
    assert create_extractor(msgspec.structs.replace(settings, llm_provider="none"), None) is None
    built = create_extractor(llm_settings(settings, fake_llm.base_url("good")), None)
    assert isinstance(built, LlmExtractor)
    built.close()
    assert built.name == "llm"


def test_parse_answer_caps_and_normalises() -> None:
    many = {"entities": [{"name": f"E{i}"} for i in range(150)], "facts": []}
    assert len(parse_answer(json.dumps(many)).entities) == 100
    typed = parse_answer(json.dumps({"entities": [{"name": " Zed  Q ", "type": None}]}))
    assert typed.entities == [ExtractedEntity("Zed Q", "Thing", "")]
