"""Search latency on a project of ~10k entities, through the real API, worker and servers.

1. Ingests synthetic episodes with bulk posts (1000 per request) and waits until all are
   `completed`; each episode names two new people, one of `ORGS` organisations and one of
   `PLACES` places, so N episodes give about 2N + ORGS + PLACES entities and 3N facts.
2. Times `--searches` sequential POST /search requests (after a warm-up) from this client:
   one- and two-word queries drawn from the corpus (people, organisations, places) and a few
   that match nothing. Prints p50/p90/p99/max, and as a same-run baseline the latency of
   GET /projects/{id} (authentication + one PostgreSQL read), with the ratio.
3. Times the entity read and the graph export, then erases the project and times that.
Run by hand with the servers up: `.venv/bin/python -m tests.bench.search_latency [--episodes N]`
(or `make bench`). It asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from service.settings import Settings, load_settings
from tests.support.client import Client, graph_query
from tests.support.processes import running_api, running_worker
from tests.support.stack import local_environ

SYLLABLES = "ka lo mir van tesk ri zo del pha nu qua sel tor bra vin cha dur mel osk ty".split()
ORGS = 500
PLACES = 200


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


def episode(n: int) -> str:
    a, b = person(2 * n), person(2 * n + 1)
    return f"{a} met {b} at {org(n % ORGS)} in {place(n % PLACES)}. They discussed the quarterly plan."


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


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1]}


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def show(label: str, samples: list[float]) -> dict[str, float]:
    stats = percentiles(samples)
    print(f"{label:<28} n={len(samples):<5} " + "  ".join(f"{k}={v:7.2f} ms" for k, v in stats.items()))
    return stats


def ingest(client: Client, project: str, episodes: int) -> float:
    started = time.perf_counter()
    for start in range(0, episodes, 1000):
        items = [{"content": episode(n)} for n in range(start, min(episodes, start + 1000))]
        client.http.post(
            f"/api/v1/projects/{project}/episodes/bulk", json={"episodes": items}
        ).raise_for_status()
    client.wait_all(project, "completed", episodes, timeout=1800)
    return time.perf_counter() - started


def measure(client: Client, settings: Settings, episodes: int, searches: int, limit: int) -> None:
    rng = random.Random(7)
    project = client.create_project()
    seconds = ingest(client, project, episodes)
    counts = graph_query(
        settings,
        "CALL () { MATCH (e:Entity {project_id: $p}) RETURN count(e) AS entities }"
        " CALL () { MATCH ()-[r:RELATES_TO {project_id: $p}]->() RETURN count(r) AS facts }"
        " RETURN entities, facts",
        p=project,
    )[0]
    print(
        f"ingested {episodes} episodes in {seconds:.1f} s ({episodes / seconds:.0f}/s): "
        f"{counts['entities']} entities, {counts['facts']} facts"
    )
    url = f"/api/v1/projects/{project}"
    for q in queries(episodes, 50, rng):  # warm-up: plans, caches, connections
        client.http.post(f"{url}/search", json={"query": q, "limit": limit})
    baseline = [timed(lambda: client.http.get(url)) for _ in range(searches)]
    latencies: list[float] = []
    hits = 0
    for q in queries(episodes, searches, rng):
        started = time.perf_counter()
        response = client.http.post(f"{url}/search", json={"query": q, "limit": limit})
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        hits += bool(response.json()["results"])
    base = show("GET project (baseline)", baseline)
    stats = show(f"POST search (limit {limit})", latencies)
    ratio = stats["p50"] / base["p50"]
    print(f"queries with results: {hits}/{searches}; search/baseline p50 ratio {ratio:.1f}")

    top = client.http.post(f"{url}/search", json={"query": org(1)}).json()["results"][0]
    entity = top["id"] if top["kind"] == "entity" else top["source"]["id"]
    entity_url, params = f"{url}/entities/{entity}", {"depth": 2}
    show(
        "GET entity depth=2", [timed(lambda: client.http.get(entity_url, params=params)) for _ in range(100)]
    )
    export = [timed(lambda: client.http.get(f"{url}/graph", params={"limit": 500})) for _ in range(20)]
    show("GET graph limit=500", export)
    started = time.perf_counter()
    client.http.delete(url).raise_for_status()
    print(f"DELETE project (erase everything): {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4600, help="4600 give about 9.8k entities")
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    settings = load_settings(local_environ(), dotenv=None)
    with (
        TemporaryDirectory() as tmp,
        running_api(Path(tmp) / "api.log") as api,
        running_worker(Path(tmp) / "worker.log"),
    ):
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        client.http.timeout = httpx.Timeout(120)
        measure(client, settings, args.episodes, args.searches, args.limit)


if __name__ == "__main__":
    main()
