"""Bounded client traffic that proves an upgrade or rollback lost and duplicated nothing.

Everything goes over HTTP to one base URL with one admin key, so the same harness drives a
local uvicorn and a Service address on a cluster:

    api_key, project = setup_project(base_url, bootstrap_key)
    with EventFollower(base_url, api_key, project) as follower, \\
         EpisodeLoad(base_url, api_key, project) as load:
        ...  # roll, break or roll back the release
    report = verify(load, [follower])
    assert report.ok, report.summary()

`EpisodeLoad` posts episodes one at a time from a few threads, each with its own
Idempotency-Key, and retries the very same request (same key, same body) through 503s,
429s, other 5xx, timeouts and dropped connections until it is accepted. `EventFollower`
reads the project's Server-Sent Events and reconnects with Last-Event-ID whenever the
stream drops. `verify` waits (bounded) for every accepted episode to finish, then compares
what the clients were told with what the server lists and what the followers saw.

Every loop here has a hard limit on time (and the load on requests), so a run always ends
by itself, whatever the service does.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

API = "/api/v1"
# The statuses the worker ends an episode in (service.memory.ingest, worker.reconciler).
TERMINAL_STATUSES = frozenset({"completed", "failed"})
COMPLETED = "completed"
# Answers that say "not now" rather than "never": retried with the same Idempotency-Key.
_RETRY_LATER = frozenset({408, 425, 429, 503})
_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def episode_content(index: int) -> str:
    """The text of episode `index`: unique per index, and a graph known in advance.

    The deterministic extractor makes of it the entities "Person{i} Smith" (Name),
    "Pilot{i % 13} Brown" (Name) and "Site{i % 7} Labs" (Organization), and the facts
    Person -MET-> Pilot and Pilot -AT-> Site (see `expected_graph`).
    """
    return f"Load {index}: Person{index} Smith met Pilot{index % 13} Brown at Site{index % 7} Labs."


def expected_graph(indices: Iterable[int]) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    """(entities as (name, type), facts as (source, relation, target)) for these episodes."""
    entities: set[tuple[str, str]] = set()
    facts: set[tuple[str, str, str]] = set()
    for i in indices:
        person, pilot, site = f"Person{i} Smith", f"Pilot{i % 13} Brown", f"Site{i % 7} Labs"
        entities |= {(person, "Name"), (pilot, "Name"), (site, "Organization")}
        facts |= {(person, "MET", pilot), (pilot, "AT", site)}
    return entities, facts


def _auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta or HTTP date), or None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HarnessError(RuntimeError):
    """The service did not give a usable answer within the harness's own deadline."""


def _request(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    accept: Iterable[int],
    deadline: float,
    **kwargs: Any,
) -> httpx.Response:
    """Send until the answer's status is in `accept`; transient failures are retried until deadline."""
    wanted = frozenset(accept)
    backoff = 0.2
    last = "no answer"
    while True:
        try:
            response = http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code in wanted:
                return response
            last = f"{response.status_code} {response.text[:300]}"
            if response.status_code not in _RETRY_LATER and response.status_code < 500:
                raise HarnessError(f"{method} {url} answered {last}")
        if time.monotonic() + backoff > deadline:
            raise HarnessError(f"{method} {url} gave no usable answer in time (last: {last})")
        time.sleep(backoff)
        backoff = min(backoff * 2, 2.0)


def setup_project(
    base_url: str, bootstrap_key: str, *, name: str = "traffic", timeout: float = 60.0
) -> tuple[str, str]:
    """Create a tenant, an API key of that tenant and a project of it; returns (api_key, project_id).

    The load then runs under a key of its own tenant, so its rate limit and data are its own.
    """
    tag = f"{name}-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=_TIMEOUT) as http:

        def call(method: str, path: str, key: str, accept: set[int], **kwargs: Any) -> httpx.Response:
            return _request(
                http, method, API + path, accept=accept, deadline=deadline, headers=_auth(key), **kwargs
            )

        created = call("POST", "/tenants", bootstrap_key, {201, 409}, json={"name": tag})
        if created.status_code == 201:
            tenant_id = str(created.json()["id"])
        else:  # an earlier attempt did create it, only its answer was lost
            tenants = call("GET", "/tenants", bootstrap_key, {200}).json()
            tenant_id = next(str(t["id"]) for t in tenants if t["name"] == tag)
        body = {"name": tag, "tenant_id": tenant_id}
        key = str(call("POST", "/keys", bootstrap_key, {201}, json=body).json()["key"])
        project = call("POST", "/projects", key, {201, 409}, json={"name": tag, "description": "traffic"})
        if project.status_code == 201:
            return key, str(project.json()["id"])
        projects = call("GET", "/projects", key, {200}, params={"limit": 500}).json()["items"]
        return key, next(str(p["id"]) for p in projects if p["name"] == tag)


# --------------------------------------------------------------------------- episodes in


@dataclass
class EpisodeRecord:
    """One logical episode: one Idempotency-Key, however many requests it took."""

    index: int
    idempotency_key: str
    content: str
    # The id in every 2xx answer for this key (the acceptance, then any replay); more than one
    # distinct id means the service duplicated the episode.
    episode_ids: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # every HTTP status seen, in order
    transport_errors: list[str] = field(default_factory=list)  # exception names, in order
    outcome: str = "pending"  # pending | accepted | gave-up | refused
    detail: str = ""  # why it was refused or given up
    first_sent: float = 0.0  # time.monotonic()
    accepted_at: float | None = None

    @property
    def accepted(self) -> bool:
        return bool(self.episode_ids)

    @property
    def episode_id(self) -> str | None:
        return self.episode_ids[0] if self.episode_ids else None

    def copy(self) -> EpisodeRecord:
        return EpisodeRecord(
            self.index,
            self.idempotency_key,
            self.content,
            list(self.episode_ids),
            list(self.statuses),
            list(self.transport_errors),
            self.outcome,
            self.detail,
            self.first_sent,
            self.accepted_at,
        )


@dataclass(frozen=True)
class LoadStats:
    requests: int
    status_counts: Mapping[int, int]
    server_errors: int  # 5xx other than 503
    unavailable: int  # 503
    unavailable_without_retry_after: int
    rate_limited: int  # 429
    transport_errors: int  # connection refused/reset, timeouts, protocol errors
    timeouts: int  # the part of transport_errors that were timeouts
    replays: int  # deliberate repeats of an accepted key
    # Episodes whose first 2xx was a 200 replay: an earlier attempt got in but its answer was
    # lost on the way (reset, timeout), and the Idempotency-Key kept it from being doubled.
    recovered_by_key: int


class _Background:
    """Runs in threads between start() and stop(); as a context manager, around the block."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EpisodeLoad(_Background):
    """Client threads that each post one episode at a time until stopped (or a limit is hit).

    Each logical episode gets a unique Idempotency-Key and content from `episode_content`.
    A 503/429 waits Retry-After (at most `retry_after_cap` s); timeouts, dropped connections
    and other 5xx back off briefly; all of them resend the same request with the same key
    until a 2xx arrives or `episode_timeout` passes. Other 4xx answers are final ("refused").
    Every `replay_every`-th accepted episode is sent once more with its key: the answer must
    name the same episode. `stop()` lets each thread finish the episode it is delivering, so
    nothing is left half-sent; `max_seconds`, `max_requests` and `max_episodes` bound a run
    even when nobody calls stop().

    The default pace (4 clients, 0.5 s apart) stays under the default per-key rate limit
    (600/min); raise it only where RATE_LIMIT_PER_MINUTE allows.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        project_id: str,
        *,
        clients: int = 4,
        pause: float = 0.5,
        replay_every: int = 5,
        retry_after_cap: float = 1.0,
        min_backoff: float = 0.1,
        max_backoff: float = 1.0,
        episode_timeout: float = 180.0,
        max_seconds: float = 900.0,
        max_requests: int = 50_000,
        max_episodes: int | None = None,
        first_index: int = 0,
        request_timeout: httpx.Timeout = _TIMEOUT,
    ) -> None:
        if clients < 1:
            raise ValueError("clients must be at least 1")
        self.base_url = base_url
        self.api_key = api_key
        self.project_id = project_id
        self.clients = clients
        self.pause = pause
        self.replay_every = replay_every
        self.retry_after_cap = retry_after_cap
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.episode_timeout = episode_timeout
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.max_episodes = max_episodes
        self.first_index = first_index
        self.request_timeout = request_timeout
        self.run_tag = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._records: list[EpisodeRecord] = []
        self._indices = itertools.count(first_index)
        self._started = 0
        self._requests = 0
        self._status_counts: Counter[int] = Counter()
        self._no_retry_after = 0
        self._transport_errors = 0
        self._timeouts = 0
        self._replays = 0
        self._begin_until = 0.0
        self._hard_deadline = 0.0
        self.errors: list[str] = []  # unexpected exceptions that ended a client thread

    # -- lifecycle

    def start(self) -> Self:
        if self._threads:
            raise RuntimeError("EpisodeLoad was already started")
        now = time.monotonic()
        self._begin_until = now + self.max_seconds
        self._hard_deadline = self._begin_until + self.episode_timeout
        for n in range(self.clients):
            thread = threading.Thread(target=self._run_client, name=f"episode-load-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Start no new episode; wait (bounded) for the ones in flight to be accepted or given up."""
        self._stop.set()
        if timeout is None:  # an episode in flight retries for at most episode_timeout, plus one request
            slack = self.episode_timeout + self.retry_after_cap + self.max_backoff + 15.0
            end = min(self._hard_deadline + 15.0, time.monotonic() + slack)
        else:
            end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise HarnessError(f"load threads still running after stop: {alive}")

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # -- what happened

    @property
    def records(self) -> list[EpisodeRecord]:
        with self._lock:
            return [r.copy() for r in self._records]

    @property
    def stats(self) -> LoadStats:
        with self._lock:
            counts = dict(self._status_counts)
            return LoadStats(
                requests=self._requests,
                status_counts=counts,
                server_errors=sum(n for code, n in counts.items() if code >= 500 and code != 503),
                unavailable=counts.get(503, 0),
                unavailable_without_retry_after=self._no_retry_after,
                rate_limited=counts.get(429, 0),
                transport_errors=self._transport_errors,
                timeouts=self._timeouts,
                replays=self._replays,
                recovered_by_key=sum(
                    1 for r in self._records if r.statuses and _first_2xx(r.statuses) == 200
                ),
            )

    def accepted_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._records if r.accepted)

    def wait_accepted(self, count: int, timeout: float) -> bool:
        """Whether at least `count` episodes were accepted within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.accepted_count() < count:
            if time.monotonic() > deadline or not self.running:
                return self.accepted_count() >= count
            time.sleep(0.05)
        return True

    # -- the client threads

    def _next_record(self) -> EpisodeRecord | None:
        with self._lock:
            if self._stop.is_set() or time.monotonic() >= self._begin_until:
                return None
            if self._requests >= self.max_requests:
                return None
            if self.max_episodes is not None and self._started >= self.max_episodes:
                return None
            index = next(self._indices)
            self._started += 1
            record = EpisodeRecord(
                index=index,
                idempotency_key=f"traffic-{self.run_tag}-{index}",
                content=episode_content(index),
                first_sent=time.monotonic(),
            )
            self._records.append(record)
            return record

    def _run_client(self) -> None:
        try:
            with httpx.Client(
                base_url=self.base_url, headers=_auth(self.api_key), timeout=self.request_timeout
            ) as http:
                while (record := self._next_record()) is not None:
                    self._deliver(http, record, replay=False)
                    if record.accepted and self.replay_every and (record.index + 1) % self.replay_every == 0:
                        self._deliver(http, record, replay=True)
                    self._stop.wait(self.pause)
        except Exception as exc:  # recorded: the report must show a harness fault, not hide it
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _take_request(self) -> bool:
        with self._lock:
            if self._requests >= self.max_requests:
                return False
            self._requests += 1
            return True

    def _deliver(self, http: httpx.Client, record: EpisodeRecord, *, replay: bool) -> None:
        url = f"{API}/projects/{self.project_id}/episodes"
        body = {"content": record.content, "metadata": {"traffic_run": self.run_tag, "index": record.index}}
        headers = {"Idempotency-Key": record.idempotency_key}
        deadline = min(time.monotonic() + self.episode_timeout, self._hard_deadline)
        backoff = self.min_backoff
        if replay:
            with self._lock:
                self._replays += 1
        while True:
            if time.monotonic() >= deadline or not self._take_request():
                if not replay:
                    with self._lock:
                        record.outcome, record.detail = "gave-up", "deadline or request budget reached"
                return
            try:
                response = http.post(url, json=body, headers=headers)
            except httpx.TransportError as exc:
                with self._lock:
                    record.transport_errors.append(type(exc).__name__)
                    self._transport_errors += 1
                    self._timeouts += isinstance(exc, httpx.TimeoutException)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            code = response.status_code
            episode_id = _episode_id(response) if 200 <= code < 300 else None
            with self._lock:
                record.statuses.append(code)
                self._status_counts[code] += 1
                if episode_id is not None:
                    record.episode_ids.append(episode_id)
                    if not replay:
                        record.outcome, record.accepted_at = "accepted", time.monotonic()
                    return
                if code == 503 and retry_after_seconds(response) is None:
                    self._no_retry_after += 1
            if 200 <= code < 300:  # a 2xx without an episode id: as broken as a 5xx, and as safe to retry
                wait = backoff
            elif code in _RETRY_LATER:
                hinted = retry_after_seconds(response)
                wait = backoff if hinted is None else max(0.05, min(hinted, self.retry_after_cap))
            elif code >= 500:
                wait = backoff
            else:
                with self._lock:
                    record.outcome, record.detail = "refused", f"{code} {response.text[:300]}"
                return
            time.sleep(wait)
            backoff = min(backoff * 2, self.max_backoff)


def _first_2xx(statuses: list[int]) -> int | None:
    return next((code for code in statuses if 200 <= code < 300), None)


def _episode_id(response: httpx.Response) -> str | None:
    try:
        value = response.json()["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(value) if value else None


# --------------------------------------------------------------------------- events out


@dataclass(frozen=True)
class StreamEvent:
    id: str  # the Redis stream id ("<ms>-<seq>"), strictly increasing within a project
    event: str  # the SSE event name ("episode.status")
    episode_id: str
    status: str
    connection: int  # which connection of the follower delivered it (1 = the first)
    data: str


def _stream_order(event_id: str) -> tuple[int, int] | None:
    ms, _, seq = event_id.partition("-")
    if ms.isdigit() and seq.isdigit():
        return int(ms), int(seq)
    return None


@dataclass
class _SseParser:
    """The text/event-stream line protocol (WHATWG HTML, "Server-sent events")."""

    last_id: str | None = None
    event: str = ""
    data: list[str] = field(default_factory=list)
    comments: int = 0
    retry_ms: int | None = None

    def feed(self, line: str) -> tuple[str | None, str, str] | None:
        """One line in; (id, event, data) when a blank line completes an event with data."""
        if line == "":
            data, event = self.data, self.event or "message"
            self.data, self.event = [], ""
            return (self.last_id, event, "\n".join(data)) if data else None
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


class EventFollower(_Background):
    """Follows a project's SSE stream in a thread, reconnecting with Last-Event-ID until stopped.

    It starts from `last_event_id` ("0-0" = the whole stream kept, so a follower started before
    the load misses nothing; None = only what comes after it connects). The id of an event is
    taken as seen only when the event is complete, so a drop mid-event resumes before it.
    Reconnects wait `backoff` s, doubling to `max_backoff` while the service is unreachable; a
    connection that is silent for `read_timeout` s (heartbeats come every 15 s) counts as
    dropped. Stops by itself after `max_seconds`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        project_id: str,
        *,
        last_event_id: str | None = "0-0",
        backoff: float = 0.2,
        max_backoff: float = 2.0,
        read_timeout: float = 35.0,
        max_seconds: float = 900.0,
        name: str = "follower",
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.project_id = project_id
        self.initial_event_id = last_event_id
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.read_timeout = read_timeout
        self.max_seconds = max_seconds
        self.name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self._events: list[StreamEvent] = []
        self._last_id = last_event_id
        self._last_order = _stream_order(last_event_id) if last_event_id else None
        self._duplicates: list[str] = []
        self._connections = 0
        self._failed_connects = 0
        self._drops: list[str] = []
        self._status_by_episode: dict[str, list[str]] = {}
        self.comments = 0
        self.server_retry_ms: int | None = None
        self.errors: list[str] = []

    # -- lifecycle

    def start(self, wait_connected: float = 10.0) -> Self:
        """Start following; wait (bounded) for the first connection, raising if none came."""
        if self._thread is not None:
            raise RuntimeError("EventFollower was already started")
        self._thread = threading.Thread(target=self._run, name=f"event-{self.name}", daemon=True)
        self._thread.start()
        if wait_connected and not self._connected.wait(wait_connected):
            self.stop()
            raise HarnessError(f"{self.name}: no event stream within {wait_connected}s: {self._drops[-3:]}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._abort_read()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise HarnessError(f"{self.name}: event thread still running after stop")

    # -- what it saw

    @property
    def events(self) -> list[StreamEvent]:
        with self._lock:
            return list(self._events)

    @property
    def last_event_id(self) -> str | None:
        with self._lock:
            return self._last_id

    @property
    def connections(self) -> int:
        """Streams successfully opened (200, text/event-stream)."""
        with self._lock:
            return self._connections

    @property
    def reconnects(self) -> int:
        """Streams opened again after one had dropped."""
        with self._lock:
            return max(0, self._connections - 1)

    @property
    def failed_connects(self) -> int:
        with self._lock:
            return self._failed_connects

    @property
    def drops(self) -> list[str]:
        """Why each stream or connection attempt ended, in order."""
        with self._lock:
            return list(self._drops)

    @property
    def duplicate_ids(self) -> list[str]:
        """Event ids delivered again, or out of order (not after the last id seen)."""
        with self._lock:
            return list(self._duplicates)

    def statuses(self) -> dict[str, list[str]]:
        """Every status seen per episode id, in arrival order."""
        with self._lock:
            return {k: list(v) for k, v in self._status_by_episode.items()}

    def terminal(self) -> dict[str, str]:
        """Episode id -> the last terminal status (completed/failed) seen for it."""
        with self._lock:
            out: dict[str, str] = {}
            for episode, statuses in self._status_by_episode.items():
                ends = [s for s in statuses if s in TERMINAL_STATUSES]
                if ends:
                    out[episode] = ends[-1]
            return out

    def wait_terminal(self, episode_ids: Iterable[str], timeout: float) -> set[str]:
        """Wait until each episode's terminal event was seen; returns those still missing."""
        wanted = set(episode_ids)
        deadline = time.monotonic() + timeout
        while True:
            missing = wanted - self.terminal().keys()
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.1)

    # -- the follower thread

    def _abort_read(self) -> None:
        """Wake a read blocked on the socket (closing from another thread does not)."""
        with self._lock:
            response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        url = f"{self.base_url.rstrip('/')}{API}/projects/{self.project_id}/events"
        timeout = httpx.Timeout(self.read_timeout, connect=3.0)
        backoff = self.backoff
        try:
            with httpx.Client(timeout=timeout) as http:
                while not self._stop.is_set() and time.monotonic() < end:
                    if self._follow_once(http, url, end):
                        backoff = self.backoff  # it was connected: reconnect quickly
                    if self._stop.wait(backoff):
                        break
                    backoff = min(backoff * 2, self.max_backoff)
        except Exception as exc:  # recorded: the report must show a harness fault, not hide it
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _follow_once(self, http: httpx.Client, url: str, end: float) -> bool:
        """One connection: read until it drops; returns whether it got connected at all."""
        headers = {**_auth(self.api_key), "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        resume = self.last_event_id
        if resume:
            headers["Last-Event-ID"] = resume
        connected = False
        reason = "ended by the server"
        try:
            with http.stream("GET", url, headers=headers) as response:
                content_type = response.headers.get("content-type", "")
                if response.status_code != 200 or not content_type.startswith("text/event-stream"):
                    response.read()
                    reason = f"answered {response.status_code} {content_type}"
                    return False
                with self._lock:
                    self._response = response
                    self._connections += 1
                    connection = self._connections
                connected = True
                self._connected.set()
                parser = _SseParser(last_id=resume)
                for line in response.iter_lines():
                    complete = parser.feed(line)
                    self.comments, self.server_retry_ms = parser.comments, parser.retry_ms
                    if complete is not None:
                        self._record(connection, *complete)
                    if self._stop.is_set() or time.monotonic() >= end:
                        reason = "stopped"
                        break
        except httpx.TransportError as exc:
            reason = "stopped" if self._stop.is_set() else f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._response = None
                if not connected:
                    self._failed_connects += 1
                self._drops.append(reason)
        return connected

    def _record(self, connection: int, event_id: str | None, event: str, data: str) -> None:
        try:
            payload = json.loads(data)
            episode_id, status = str(payload["episode_id"]), str(payload["status"])
        except (ValueError, KeyError, TypeError):
            episode_id, status = "", ""
        order = _stream_order(event_id) if event_id else None
        with self._lock:
            if (
                event_id is None
                or order is None
                or (self._last_order is not None and order <= self._last_order)
            ):
                self._duplicates.append(event_id or "<no id>")
                return
            self._last_order, self._last_id = order, event_id
            self._events.append(StreamEvent(event_id, event, episode_id, status, connection, data))
            if episode_id:
                self._status_by_episode.setdefault(episode_id, []).append(status)


def read_stream_ids(
    base_url: str, api_key: str, project_id: str, *, after: str, until: str, timeout: float = 30.0
) -> list[str]:
    """The ids the server holds in the project's stream after `after`, up to and including `until`.

    A fresh connection replays the stream from `after`, so this is the server's own list to
    compare a follower against (ids it has but the follower never saw are gaps).
    """
    limit, start = _stream_order(until), _stream_order(after)
    if limit is None or start is None:
        raise ValueError(f"not stream ids: {after!r}, {until!r}")
    ids: list[str] = []
    if start >= limit:
        return ids
    deadline = time.monotonic() + timeout
    headers = {**_auth(api_key), "Accept": "text/event-stream", "Last-Event-ID": after}
    url = f"{base_url.rstrip('/')}{API}/projects/{project_id}/events"
    while True:
        try:
            with httpx.stream(
                "GET", url, headers=headers, timeout=httpx.Timeout(20.0, connect=3.0)
            ) as response:
                if response.status_code != 200:
                    raise HarnessError(f"event stream answered {response.status_code}")
                parser = _SseParser(last_id=headers["Last-Event-ID"])
                for line in response.iter_lines():  # heartbeats come at least every 15 s
                    if time.monotonic() > deadline:
                        raise HarnessError(f"stream replay did not reach {until} within {timeout}s")
                    complete = parser.feed(line)
                    if complete is None or complete[0] is None:
                        continue
                    order = _stream_order(complete[0])
                    if order is None or order > limit:
                        return ids
                    ids.append(complete[0])
                    headers["Last-Event-ID"] = complete[0]
                    if order == limit:
                        return ids
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise HarnessError(f"stream replay failed: {exc}") from exc
            time.sleep(0.3)


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class StoredEpisode:
    id: str
    status: str
    client_id: str | None


def list_episodes(
    base_url: str, api_key: str, project_id: str, *, status: str | None = None, timeout: float = 60.0
) -> list[StoredEpisode]:
    """Every episode the project lists, page by page (cursor pagination), retrying blips."""
    deadline = time.monotonic() + timeout
    found: list[StoredEpisode] = []
    cursor: str | None = None
    with httpx.Client(base_url=base_url, headers=_auth(api_key), timeout=_TIMEOUT) as http:
        while True:
            params: dict[str, str | int] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            if status:
                params["status"] = status
            page = _request(
                http,
                "GET",
                f"{API}/projects/{project_id}/episodes",
                accept={200},
                deadline=deadline,
                params=params,
            ).json()
            found += [
                StoredEpisode(str(e["id"]), str(e["status"]), e.get("client_id")) for e in page["items"]
            ]
            cursor = page.get("next_cursor")
            if not cursor:
                return found


def count_episodes(
    base_url: str, api_key: str, project_id: str, *, status: str | None = None, timeout: float = 60.0
) -> int:
    """How many episodes the server stores for the project (optionally with one status)."""
    return len(list_episodes(base_url, api_key, project_id, status=status, timeout=timeout))


@dataclass(frozen=True)
class FollowerReport:
    name: str
    events: int
    connections: int
    reconnects: int
    failed_connects: int
    duplicate_events: int  # ids delivered again or out of order
    missing_terminal: tuple[str, ...]  # accepted episode ids whose completed/failed event never came
    missing_ids: tuple[str, ...]  # ids the server's stream holds that this follower skipped
    errors: tuple[str, ...]


@dataclass(frozen=True)
class TrafficReport:
    posted: int  # logical episodes (Idempotency-Keys) the load started
    accepted: int  # of those, answered 2xx with an episode id
    unaccepted: tuple[str, ...]  # keys never accepted (gave up at a deadline, or refused with a 4xx)
    stored: int  # episodes the project lists, server-side
    completed: int  # accepted episodes stored with status completed
    failed: tuple[str, ...]  # accepted episode ids that ended failed
    lost: tuple[str, ...]  # accepted episode ids not stored, or not completed in time
    lost_reasons: Mapping[str, str]
    duplicated: tuple[str, ...]  # keys with more than one episode id (in answers or in storage)
    unexpected_stored: tuple[str, ...]  # stored episode ids that no accepted key accounts for
    requests: int
    status_counts: Mapping[int, int]
    server_errors: int  # 5xx other than 503
    unavailable: int  # 503 answers
    unavailable_without_retry_after: int
    rate_limited: int
    transport_errors: int
    recovered_by_key: int  # first acceptance was a 200 replay: an answer lost in flight, not doubled
    followers: tuple[FollowerReport, ...]
    harness_errors: tuple[str, ...]

    def problems(self) -> list[str]:
        """Every broken promise, in words; empty when nothing was lost, doubled or mis-answered."""
        out: list[str] = []
        if self.unaccepted:
            out.append(f"{len(self.unaccepted)} episodes never accepted: {list(self.unaccepted)[:5]}")
        if self.lost:
            sample = {k: self.lost_reasons[k] for k in list(self.lost)[:5]}
            out.append(f"{len(self.lost)} accepted episodes lost: {sample}")
        if self.duplicated:
            out.append(f"{len(self.duplicated)} keys duplicated: {list(self.duplicated)[:5]}")
        if self.unexpected_stored:
            out.append(f"{len(self.unexpected_stored)} stored episodes nobody accepted")
        if self.stored != self.accepted:
            out.append(f"the project stores {self.stored} episodes, {self.accepted} were accepted")
        if self.server_errors:
            out.append(f"{self.server_errors} 5xx answers other than 503")
        if self.unavailable_without_retry_after:
            out.append(f"{self.unavailable_without_retry_after} 503 answers without Retry-After")
        for f in self.followers:
            if f.missing_terminal:
                out.append(f"{f.name} missed {len(f.missing_terminal)} terminal events")
            if f.missing_ids:
                out.append(f"{f.name} skipped {len(f.missing_ids)} stream ids: {list(f.missing_ids)[:5]}")
            if f.duplicate_events:
                out.append(f"{f.name} got {f.duplicate_events} events twice or out of order")
            out += [f"{f.name}: {e}" for e in f.errors]
        out += list(self.harness_errors)
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        followers = ", ".join(
            f"{f.name}: {f.events} events, {f.reconnects} reconnects, {len(f.missing_terminal)} missing"
            for f in self.followers
        )
        head = (
            f"posted {self.posted}, accepted {self.accepted}, stored {self.stored}, "
            f"completed {self.completed}, "
            f"lost {len(self.lost)}, duplicated {len(self.duplicated)}; {self.requests} requests "
            f"{dict(sorted(self.status_counts.items()))}, {self.transport_errors} transport errors "
            f"({self.recovered_by_key} answers lost but recovered by key), "
            f"{self.unavailable} 503 ({self.unavailable_without_retry_after} without Retry-After), "
            f"{self.server_errors} other 5xx; {followers or 'no followers'}"
        )
        problems = self.problems()
        return head + ("\nproblems:\n  " + "\n  ".join(problems) if problems else "")


def verify(
    loads: EpisodeLoad | Sequence[EpisodeLoad],
    followers: Sequence[EventFollower] = (),
    *,
    timeout: float = 120.0,
    stop_followers: bool = True,
    poll: float = 0.5,
) -> TrafficReport:
    """Stop the loads, wait (at most `timeout` s) for every accepted episode to end and for the
    followers to see it end, then check the server's list and stream against what was answered.

    All loads must target one project; it should hold nothing else (stored == accepted).
    """
    loads = [loads] if isinstance(loads, EpisodeLoad) else list(loads)
    if not loads:
        raise ValueError("verify needs at least one EpisodeLoad")
    first = loads[0]
    if any((ld.base_url, ld.project_id) != (first.base_url, first.project_id) for ld in loads):
        raise ValueError("all loads must target the same base URL and project")
    base_url, api_key, project_id = first.base_url, first.api_key, first.project_id
    deadline = time.monotonic() + timeout
    for load in loads:
        load.stop()
    records = [r for load in loads for r in load.records]
    accepted = [r for r in records if r.accepted]
    accepted_ids = {r.episode_ids[0] for r in accepted}

    stored = list_episodes(base_url, api_key, project_id)
    while True:
        status_of = {e.id: e.status for e in stored}
        pending = [i for i in accepted_ids if i in status_of and status_of[i] not in TERMINAL_STATUSES]
        if not pending or time.monotonic() + poll > deadline:
            break
        time.sleep(poll)
        stored = list_episodes(base_url, api_key, project_id)

    ended = {i for i in accepted_ids if status_of.get(i) in TERMINAL_STATUSES}
    follower_reports = []
    for follower in followers:
        missing = follower.wait_terminal(ended, max(2.0, deadline - time.monotonic()))
        if stop_followers:
            follower.stop()
        missing |= accepted_ids - ended  # never ended, so its terminal event cannot have come
        follower_reports.append(_follower_report(follower, missing, base_url, api_key, project_id))

    lost_reasons: dict[str, str] = {}
    for episode_id in sorted(accepted_ids):
        if episode_id not in status_of:
            lost_reasons[episode_id] = "not listed by the server"
        elif status_of[episode_id] == "failed":
            lost_reasons[episode_id] = "ended failed"
        elif status_of[episode_id] != COMPLETED:
            lost_reasons[episode_id] = f"still {status_of[episode_id]} at the deadline"

    by_key: dict[str, set[str]] = {}
    for e in stored:
        if e.client_id is not None:
            by_key.setdefault(e.client_id, set()).add(e.id)
    keys = {r.idempotency_key for r in records}
    duplicated = sorted(
        r.idempotency_key
        for r in records
        if len(set(r.episode_ids) | by_key.get(r.idempotency_key, set())) > 1
    )
    unexpected = sorted(e.id for e in stored if e.client_id not in keys or e.id not in accepted_ids)

    stats = [load.stats for load in loads]
    status_counts: Counter[int] = Counter()
    for s in stats:
        status_counts.update(s.status_counts)
    return TrafficReport(
        posted=len(records),
        accepted=len(accepted),
        unaccepted=tuple(f"{r.idempotency_key} ({r.outcome}: {r.detail})" for r in records if not r.accepted),
        stored=len(stored),
        completed=sum(1 for i in accepted_ids if status_of.get(i) == COMPLETED),
        failed=tuple(sorted(i for i in accepted_ids if status_of.get(i) == "failed")),
        lost=tuple(lost_reasons),
        lost_reasons=lost_reasons,
        duplicated=tuple(duplicated),
        unexpected_stored=tuple(unexpected),
        requests=sum(s.requests for s in stats),
        status_counts=dict(status_counts),
        server_errors=sum(s.server_errors for s in stats),
        unavailable=sum(s.unavailable for s in stats),
        unavailable_without_retry_after=sum(s.unavailable_without_retry_after for s in stats),
        rate_limited=sum(s.rate_limited for s in stats),
        transport_errors=sum(s.transport_errors for s in stats),
        recovered_by_key=sum(s.recovered_by_key for s in stats),
        followers=tuple(follower_reports),
        harness_errors=tuple(e for load in loads for e in load.errors),
    )


def _follower_report(
    follower: EventFollower, missing_terminal: set[str], base_url: str, api_key: str, project_id: str
) -> FollowerReport:
    events = follower.events
    missing_ids: tuple[str, ...] = ()
    last = follower.last_event_id
    if events and last:
        start = follower.initial_event_id or events[0].id
        server = read_stream_ids(base_url, api_key, project_id, after=start, until=last)
        if not follower.initial_event_id:  # started "from now": its first event is the earliest it owes
            server = [events[0].id, *server]
        # A trimmed stream no longer replays its oldest entries, so this never over-reports.
        seen = {e.id for e in events}
        missing_ids = tuple(i for i in server if i not in seen)
    return FollowerReport(
        name=follower.name,
        events=len(events),
        connections=follower.connections,
        reconnects=follower.reconnects,
        failed_connects=follower.failed_connects,
        duplicate_events=len(follower.duplicate_ids),
        missing_terminal=tuple(sorted(missing_terminal)),
        missing_ids=missing_ids,
        errors=tuple(follower.errors),
    )
