"""Search and graph reads on a project of 100,000 entities and ~300,000 facts, and a fact stated
by 100,000 episodes (goal 5 of the throughput targets).

1. Creates a project through the API, then seeds its graph by writing Neo4j directly with
   `service.stores.graph_writes.write_batch` (the worker's own UNWIND batches, 1000 synthetic
   episodes each), which is how the worker writes it, without PostgreSQL rows or extraction:
   ingesting 50,000 episodes through the API and worker would take far longer than the
   reads this measures. Each episode names two new people, one of `ORGS` organisations and
   one of `PLACES` places and states six facts about them; every fifth also states a fact
   about one hub place (10,000 facts on one entity), so `--episodes 49650` gives 100,000
   entities and ~309,000 facts.
2. With `CLIENTS` concurrent clients: `POST /search` (one- and two-word queries drawn from
   the corpus, 10% matching nothing) and, as a same-run baseline, `GET /projects/{id}`
   (authentication + one PostgreSQL read) at the same concurrency; then `GET /entities/{id}
   ?depth=2` of the hub and of ordinary entities, and `GET /graph?limit=500`.
3. One fact stated by 1, 1,000 and 100,000 episodes: the time to write one more episode
   stating it (one batch), to read it (entity read of its source) and to erase one of its
   episodes, at each count.
4. Erases the project through the API (and times it). Prints the table of `tests.bench.report`.
Run with the servers up: `.venv/bin/python -m tests.bench.search_latency` (or `make bench`).
It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from neo4j import Driver

from service.settings import Settings, load_settings
from service.stores.erasure import delete_episode_graph
from service.stores.graph import create_driver, create_worker_driver
from service.stores.graph_reads import entity_id
from service.stores.graph_writes import GraphBatch, write_batch
from tests.bench.report import Row, emit, limit_row, ratio_row
from tests.support.client import Client, graph_query
from tests.support.processes import running_api
from tests.support.stack import local_environ

GOAL = "5 search"
SYLLABLES = "ka lo mir van tesk ri zo del pha nu qua sel tor bra vin cha dur mel osk ty".split()
ORGS = 500
PLACES = 200
HUB = "Grand Hubburg"
CLIENTS = 8
BATCH = 1000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def word(n: int, parts: int) -> str:
    out = []
    for _ in range(parts):
        n, r = divmod(n, len(SYLLABLES))
        out.append(SYLLABLES[r])
    return "".join(out).capitalize()


def person(n: int) -> str:
    return f"{word(n * 7 + 3, 3)} {word(n, 4)}"


def org(n: int) -> str:
    return f"{word(n + 11, 2)} Corp"


def place(n: int) -> str:
    return f"{word(n + 5, 3)}burg"


def key(name: str) -> str:
    return " ".join(name.casefold().split())


def add_episode(batch: GraphBatch, project: str, n: int) -> None:
    """What the worker would write for episode n (see the module docstring)."""
    episode = str(uuid.uuid4())
    batch.add_episode(episode, project, "bench", NOW)
    a, b, o, p = person(2 * n), person(2 * n + 1), org(n % ORGS), place(n % PLACES)
    names = [(a, "Person"), (b, "Person"), (o, "Organization"), (p, "Place")]
    if n % 5 == 0:
        names.append((HUB, "Place"))
    for name, type_ in names:
        batch.add_mention(episode, project, key(name), name, type_, f"{name}, {type_.lower()} in the records")
    facts = [
        (a, "MET", b, f"{a} met {b} at {o}"),
        (a, "MENTORS", b, f"{a} mentors {b}"),
        (a, "WORKS_AT", o, f"{a} works at {o}"),
        (b, "WORKS_AT", o, f"{b} works at {o}"),
        (a, "LIVES_IN", p, f"{a} lives in {p}"),
        (b, "LIVES_IN", p, f"{b} lives in {p}"),
        (o, "LOCATED_IN", p, f"{o} has an office in {p}"),
    ]
    if n % 5 == 0:
        facts.append((a, "VISITED", HUB, f"{a} visited {HUB}"))
    for source, name, target, sentence in facts:
        batch.add_fact(episode, project, (key(source), name, key(target)), sentence, NOW)


def seed(driver: Driver, settings: Settings, project: str, episodes: int) -> float:
    started = time.perf_counter()
    for start in range(0, episodes, BATCH):
        batch = GraphBatch()
        for n in range(start, min(episodes, start + BATCH)):
            add_episode(batch, project, n)
        write_batch(driver, settings.neo4j_database, batch)
    return time.perf_counter() - started


def queries(episodes: int, count: int, rng: random.Random) -> list[str]:
    picks: list[str] = []
    for _ in range(count):
        n = rng.randrange(episodes)
        kind = rng.randrange(10)
        if kind < 4:
            picks.append(person(2 * n).split()[rng.randrange(2)])
        elif kind < 6:
            picks.append(person(2 * n + 1))
        elif kind < 8:
            picks.append(org(n % ORGS))
        elif kind < 9:
            picks.append(place(n % PLACES))
        else:
            picks.append(f"zzz{n} nothing")
    return picks


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(label: str, samples: list[float]) -> None:
    stats = {q: percentile(samples, q / 100) for q in (50, 95, 99)}
    print(f"{label:<34} n={len(samples):<5} " + "  ".join(f"p{k}={v:7.2f} ms" for k, v in stats.items()))


def concurrently(
    base_url: str, token: str, calls: list[Callable[[httpx.Client], httpx.Response]]
) -> list[float]:
    """Run the calls from CLIENTS threads (one HTTP client each); the latency of each, in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    todo = iter(calls)

    def client_loop() -> None:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            while True:
                with lock:
                    call = next(todo, None)
                if call is None:
                    return
                started = time.perf_counter()
                response = call(http)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def timed_ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def popular_fact(driver: Driver, settings: Settings, client: Client, project: str, most: int) -> list[Row]:
    """One fact stated by ever more episodes: write one more, read it, erase one, at each count."""
    relation = ("popular source", "STATES_OFTEN", "popular target")
    url = f"/api/v1/projects/{project}/entities/{entity_id(relation[0])}"
    rows: list[Row] = []
    stated = 0
    last_episode = ""

    def state(count: int) -> None:
        nonlocal last_episode
        for start in range(0, count, 5000):
            batch = GraphBatch()
            for _ in range(min(5000, count - start)):
                last_episode = str(uuid.uuid4())
                batch.add_episode(last_episode, project, "bench", NOW)
                batch.add_mention(last_episode, project, relation[0], "Popular Source", "Thing", "often said")
                batch.add_mention(last_episode, project, relation[2], "Popular Target", "Thing", "often said")
                batch.add_fact(last_episode, project, relation, "Popular Source states often", NOW)
            write_batch(driver, settings.neo4j_database, batch)

    async def erase(episode: str) -> None:
        adriver = create_driver(settings)
        try:
            await delete_episode_graph(adriver, settings.neo4j_database, project, episode)
        finally:
            await adriver.close()

    for target in sorted({1, min(1000, most), most}):
        state(target - 1 - stated)  # bulk, untimed: up to one short of the target
        writes = [timed_ms(lambda: state(1)) for _ in range(1)]
        stated = target
        reads = [timed_ms(lambda: client.http.get(url).raise_for_status()) for _ in range(20)]
        erase_ms = timed_ms(lambda: asyncio.run(erase(last_episode)))
        state(1)  # put the erased one back
        support = graph_query(
            settings,
            "MATCH ()-[r:RELATES_TO {uid: $uid}]->() RETURN r.support AS support",
            uid=_fact_uid(project, relation),
        )[0]["support"]
        print(
            f"fact stated by {support:>7,} episodes: write one more {writes[0]:7.1f} ms, "
            f"read p50 {percentile(reads, 0.5):6.1f} ms, erase one episode {erase_ms:7.1f} ms"
        )
        rows += [
            limit_row(GOAL, f"write 1 episode stating a fact stated {target:,}x", writes[0], unit="ms"),
            limit_row(
                GOAL,
                f"read that fact's entity, {target:,} supporters, p50",
                percentile(reads, 0.5),
                unit="ms",
            ),
            limit_row(GOAL, f"erase 1 of {target:,} supporting episodes", erase_ms, unit="ms"),
        ]
    return rows


def _fact_uid(project: str, relation: tuple[str, str, str]) -> str:
    from service.stores.graph_writes import fact_uid

    return fact_uid(project, *relation)


def measure(
    client: Client, settings: Settings, base_url: str, episodes: int, searches: int, mentions: int
) -> None:
    rng = random.Random(7)
    project = client.create_project()
    driver = create_worker_driver(settings)
    try:
        seconds = seed(driver, settings, project, episodes)
        counts = graph_query(
            settings,
            "CALL () { MATCH (e:Entity {project_id: $p}) RETURN count(e) AS entities }"
            " CALL () { MATCH ()-[r:RELATES_TO {project_id: $p}]->() RETURN count(r) AS facts }"
            " RETURN entities, facts",
            p=project,
        )[0]
        print(
            f"seeded {episodes} episodes straight into Neo4j in {seconds:.1f} s: "
            f"{counts['entities']:,} entities, {counts['facts']:,} facts"
        )
        url = f"/api/v1/projects/{project}"
        token = settings.memstack_bootstrap_api_key

        def search_call(q: str) -> Callable[[httpx.Client], httpx.Response]:
            return lambda http: http.post(f"{url}/search", json={"query": q, "limit": 10})

        def get_call(path: str, **params: int) -> Callable[[httpx.Client], httpx.Response]:
            return lambda http: http.get(path, params=params)

        concurrently(base_url, token, [search_call(q) for q in queries(episodes, 200, rng)])  # warm-up
        baseline = concurrently(base_url, token, [get_call(url)] * searches)
        search = concurrently(base_url, token, [search_call(q) for q in queries(episodes, searches, rng)])
        show(f"GET project ({CLIENTS} clients)", baseline)
        show(f"POST search ({CLIENTS} clients)", search)

        ordinary = [entity_id(key(person(2 * rng.randrange(episodes)))) for _ in range(180)]
        ordinary += [entity_id(key(org(rng.randrange(ORGS)))) for _ in range(100)]
        ordinary += [entity_id(key(place(rng.randrange(PLACES)))) for _ in range(100)]
        targets = [*ordinary, *[entity_id(key(HUB))] * 20]
        entity_calls = [get_call(f"{url}/entities/{e}", depth=2) for e in targets]
        concurrently(base_url, token, entity_calls[:20])
        entity = [timed_ms(lambda c=c: c(client.http).raise_for_status()) for c in entity_calls]  # type: ignore[misc]
        hub = [
            timed_ms(
                lambda: client.http.get(
                    f"{url}/entities/{entity_id(key(HUB))}", params={"depth": 2}
                ).raise_for_status()
            )
            for _ in range(50)
        ]
        graph = [
            timed_ms(lambda: client.http.get(f"{url}/graph", params={"limit": 500}).raise_for_status())
            for _ in range(50)
        ]
        show("GET entity depth=2 (mixed)", entity)
        show("GET entity depth=2 (10k-fact hub)", hub)
        show("GET graph limit=500", graph)

        rows = [
            ratio_row(
                GOAL,
                f"POST search p95, {CLIENTS} clients",
                percentile(search, 0.95),
                percentile(baseline, 0.95),
                unit=" ms",
                baseline_label="GET project p95",
            ),
            limit_row(
                GOAL, f"POST search p95, {CLIENTS} clients", percentile(search, 0.95), unit="ms", maximum=20
            ),
            limit_row(
                GOAL, f"POST search p99, {CLIENTS} clients", percentile(search, 0.99), unit="ms", maximum=50
            ),
            limit_row(GOAL, "GET graph?limit=500 p95", percentile(graph, 0.95), unit="ms", maximum=100),
            limit_row(
                GOAL, "GET entity depth=2 p99 (mixed)", percentile(entity, 0.99), unit="ms", maximum=50
            ),
            limit_row(
                GOAL, "GET entity depth=2 p99 (10k-fact hub)", percentile(hub, 0.99), unit="ms", maximum=50
            ),
        ]
        rows += popular_fact(driver, settings, client, project, mentions)
        emit(rows)  # before the clean-up, so a failed erasure never loses the table
    finally:
        driver.close()
        started = time.perf_counter()
        client.http.delete(f"/api/v1/projects/{project}").raise_for_status()
        print(f"DELETE project (erase everything): {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--episodes", type=int, default=49650, help="49650 give 100,000 entities")
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--mentions", type=int, default=100_000, help="episodes stating the popular fact")
    args = parser.parse_args()
    settings = load_settings(local_environ(), dotenv=None)
    with TemporaryDirectory() as tmp, running_api(Path(tmp) / "api.log") as api:
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        client.http.timeout = httpx.Timeout(600)
        measure(client, settings, api.base_url, args.episodes, args.searches, args.mentions)


if __name__ == "__main__":
    main()
