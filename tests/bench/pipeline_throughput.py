"""End-to-end ingest throughput: episodes/s from POST to `completed`, with the same-run floors.

One API process, one worker (two for the scale-out row), the real servers:
- goal 2: 32 clients posting one episode per request, against the bulk rate of the same run;
- goal 3: bulk posts (500 per request), against a raw Neo4j write of the same extractions in
  the same batches (`write_batch`, what the worker itself calls: the graph store is the floor);
- goal 6: two workers against one, on the same bulk load.
The deterministic extractor's rate alone is printed for reference, and so is where the CPU went
in the one- and two-worker phases (`tests.bench.cpu`): what bounds the scale-out. Completion is read from
PostgreSQL, not through the API, so polling does not load the process being measured.
Run with `make bench` or, servers up, `.venv/bin/python -m tests.bench.pipeline_throughput`.
It asserts nothing.
"""

from __future__ import annotations

import argparse
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg

from service.memory.extractor import DeterministicExtractor
from service.memory.ingest import add_extraction
from service.settings import Settings, load_settings
from service.stores.episode_status import ClaimedEpisode
from service.stores.graph import create_worker_driver
from service.stores.graph_writes import GraphBatch, write_batch
from tests.bench import cpu, load, report
from tests.bench.accept_path import episode_requests
from tests.support.client import Client
from tests.support.processes import running_api, running_worker
from tests.support.stack import local_environ

QUIET = {"LOG_LEVEL": "WARNING"}


def corpus(count: int, tag: str) -> list[str]:
    return [
        f"{tag} {n}: Person{n % 997} Smith met Agent{n % 131} Brown at Site{n % 37} Labs in Berlin. "
        f'They discussed "Project {n % 53}" with Acme Corp.'
        for n in range(count)
    ]


def progress(settings: Settings, project: str) -> tuple[int, int]:
    """(completed, all) episodes of the project."""
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM episodes"
            " WHERE project_id = %s",
            (project,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_completed(settings: Settings, project: str, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while (done := progress(settings, project))[0] < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {done[0]} of {count} completed")
        time.sleep(0.1)


def bulk_rate(settings: Settings, client: Client, texts: list[str], batch: int) -> float:
    project = client.create_project()
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        items = [{"content": t} for t in texts[start : start + batch]]
        response = client.http.post(f"/api/v1/projects/{project}/episodes/bulk", json={"episodes": items})
        response.raise_for_status()
    wait_completed(settings, project, len(texts))
    rate = len(texts) / (time.perf_counter() - started)
    client.http.delete(f"/api/v1/projects/{project}").raise_for_status()
    return rate


def single_rate(settings: Settings, client: Client, base_url: str, seconds: float) -> tuple[float, int]:
    """32 connections posting one episode per request for `seconds`, until all are completed."""
    project = client.create_project()
    started = time.perf_counter()
    posted = load.saturate(
        base_url,
        episode_requests(base_url, project, settings.memstack_bootstrap_api_key),
        connections=32,
        seconds=seconds,
    )
    count = posted.statuses.get(202, 0)
    if count != posted.requests:
        raise SystemExit(f"one per request: unexpected statuses {dict(posted.statuses)}")
    wait_completed(settings, project, count)
    rate = count / (time.perf_counter() - started)
    client.http.delete(f"/api/v1/projects/{project}").raise_for_status()
    return rate, count


def raw_graph_rate(settings: Settings, texts: list[str], batch: int) -> float:
    """The same extractions written straight to Neo4j in the same batches: the floor."""
    extractor = DeterministicExtractor()
    project = uuid.uuid4()
    now = datetime.now(UTC)
    driver = create_worker_driver(settings)
    try:
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            graph = GraphBatch()
            for text in texts[start : start + batch]:
                episode = ClaimedEpisode(uuid.uuid4(), project, text, "bench", None, now, 1)
                add_extraction(graph, episode, extractor.extract(text, project_id=str(project)))
            write_batch(driver, settings.neo4j_database, graph)
        rate = len(texts) / (time.perf_counter() - started)
        while driver.execute_query(
            "MATCH (n {project_id: $p}) WITH n LIMIT 2000 DETACH DELETE n RETURN count(*) AS n",
            p=str(project),
            database_=settings.neo4j_database,
        ).records[0]["n"]:
            pass
    finally:
        driver.close()
    return rate


def extractor_rate(texts: list[str]) -> float:
    extractor = DeterministicExtractor()
    started = time.perf_counter()
    for text in texts:
        extractor.extract(text)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--single-seconds", type=float, default=8.0, help="how long 32 clients post one by one"
    )
    args = parser.parse_args()
    settings = load_settings(local_environ(), dotenv=None)
    texts = corpus(args.episodes, "Bench")
    with TemporaryDirectory() as tmp, ExitStack() as stack:
        logs = Path(tmp)
        api = stack.enter_context(running_api(logs / "api.log", QUEUE_MAX_SIZE="1000000", **QUIET))
        first = stack.enter_context(running_worker(logs / "worker-1.log", **QUIET))
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        stack.callback(client.http.close)
        bulk_rate(settings, client, corpus(1000, "Warmup"), args.batch)
        raw = raw_graph_rate(settings, texts, args.batch)
        roots = {"api": api.process.pid, "worker": first.process.pid}
        with cpu.measure(roots) as one_cpu:
            bulk = bulk_rate(settings, client, texts, args.batch)
        single, posted = single_rate(settings, client, api.base_url, args.single_seconds)
        with (
            running_worker(logs / "worker-2.log", **QUIET) as second,
            cpu.measure({**roots, "worker 2": second.process.pid}) as two_cpu,
        ):
            two = bulk_rate(settings, client, texts, args.batch)
        base = extractor_rate(texts)
    # What bounds goal 6: with the machine's cores already busy under one worker, a second
    # worker can only take CPU from the servers it feeds.
    print(f"CPU, bulk with one worker: {one_cpu.describe()}", flush=True)
    print(f"CPU, bulk with two workers: {two_cpu.describe()}", flush=True)
    report.emit(
        [
            report.ratio_row(
                "2 single",
                f"one episode per request, 32 clients ({posted} episodes), episodes/s",
                single,
                bulk,
                minimum=0.5,
                baseline_label="bulk",
            ),
            report.ratio_row(
                "3 bulk",
                f"bulk of {args.batch}, end to end, episodes/s",
                bulk,
                raw,
                minimum=0.5,
                baseline_label="raw Neo4j write",
            ),
            report.ratio_row(
                "6 scale-out",
                "two workers vs one, bulk, episodes/s",
                two,
                bulk,
                minimum=1.6,
                baseline_label="one worker",
            ),
            report.limit_row(
                "6 scale-out",
                "machine CPU busy, bulk with one worker (what bounds the second)",
                one_cpu.busy,
                unit=f"of {one_cpu.cores} cores",
            ),
            report.limit_row(
                "6 scale-out",
                "machine CPU busy, bulk with two workers",
                two_cpu.busy,
                unit=f"of {two_cpu.cores} cores",
            ),
            report.limit_row("-", "deterministic extractor alone, episodes/s", base, unit="/s"),
        ]
    )


if __name__ == "__main__":
    main()
