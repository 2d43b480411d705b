"""End-to-end ingest throughput: episodes/s from POST to `completed`, one API and one worker.

Prints absolute numbers and ratios against baselines measured in the same run:
- the deterministic extractor alone on the same texts (the CPU floor of the worker), and
- the same pipeline fed one episode per request (what batching buys).
Run with `make bench` (which starts the local servers), or directly with the servers up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

from service.memory.extractor import DeterministicExtractor
from service.settings import load_settings
from tests.support.client import Client
from tests.support.processes import running_api, running_worker
from tests.support.stack import local_environ


def corpus(count: int, tag: str) -> list[str]:
    return [
        f"{tag} {n}: Person{n % 997} Smith met Agent{n % 131} Brown at Site{n % 37} Labs in Berlin. "
        f'They discussed "Project {n % 53}" with Acme Corp.'
        for n in range(count)
    ]


def extractor_rate(texts: list[str]) -> float:
    extractor = DeterministicExtractor()
    started = time.perf_counter()
    for text in texts:
        extractor.extract(text)
    return len(texts) / (time.perf_counter() - started)


def wait_completed(client: Client, project: str, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = client.statuses(project)
        if len(statuses) == count and all(s == "completed" for s in statuses.values()):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {statuses and statuses.values()}")
        time.sleep(0.2)


def bulk_rate(client: Client, texts: list[str], batch: int) -> float:
    project = client.create_project()
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        items = [{"content": t} for t in texts[start : start + batch]]
        response = client.http.post(f"/api/v1/projects/{project}/episodes/bulk", json={"episodes": items})
        response.raise_for_status()
    wait_completed(client, project, len(texts))
    return len(texts) / (time.perf_counter() - started)


def single_rate(client: Client, texts: list[str], concurrency: int) -> float:
    project = client.create_project()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for response in pool.map(lambda t: client.post_episode(project, t), texts):
            response.raise_for_status()
    wait_completed(client, project, len(texts))
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=1_000, help="episodes posted one per request")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings(local_environ(), dotenv=None)
    texts = corpus(args.episodes, "Bench")
    with TemporaryDirectory() as tmp:
        logs = Path(tmp)
        with (
            running_api(logs / "api.log", LOG_LEVEL="WARNING") as api,
            running_worker(logs / "worker.log", LOG_LEVEL="WARNING"),
        ):
            client = Client(api.base_url, settings.memstack_bootstrap_api_key)
            bulk_rate(client, corpus(1000, "Warmup"), args.batch)
            base = statistics.median(extractor_rate(texts) for _ in range(args.rounds))
            bulk = statistics.median(bulk_rate(client, texts, args.batch) for _ in range(args.rounds))
            single = single_rate(client, corpus(args.single, "Single"), concurrency=8)
    rows = [
        ("extractor alone (baseline)", base, ""),
        (f"end to end, bulk of {args.batch}", bulk, f"({bulk / base:.3f} x extractor)"),
        ("end to end, one per request (x8)", single, f"({single / base:.3f} x extractor)"),
    ]
    for label, rate, ratio in rows:
        print(f"{label + ':':<36}{rate:10.0f} episodes/s  {ratio}")
    print(f"{'bulk / one per request:':<36}{bulk / single:10.1f} x")


if __name__ == "__main__":
    main()
