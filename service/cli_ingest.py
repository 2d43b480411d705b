"""`memstack ingest FILE.jsonl --project ID`: post a file of episodes in bulk, with progress."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from service.api.schemas import MAX_BULK_EPISODES, EpisodeIn
from service.memory.errors import RETRY_AFTER_SECONDS

BATCH = 500
MAX_WAITS = 30


@dataclass
class Summary:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def read_episodes(path: Path, summary: Summary) -> Iterator[tuple[int, dict[str, Any]]]:
    """Valid lines as (line number, episode); invalid ones are recorded with the reason."""
    decoder = msgspec.json.Decoder(EpisodeIn)
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                episode = decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                summary.rejected.append((number, str(exc)))
                continue
            yield number, msgspec.to_builtins(episode)


def _post(client: httpx.Client, url: str, batch: list[tuple[int, dict[str, Any]]], summary: Summary) -> None:
    for _ in range(MAX_WAITS):
        response = client.post(url, json={"episodes": [episode for _, episode in batch]})
        if response.status_code in (429, 503):
            time.sleep(float(response.headers.get("retry-after", RETRY_AFTER_SECONDS)))
            continue
        if response.status_code == 202:
            body = response.json()
            summary.accepted += len(body["accepted"])
            summary.duplicates += len(body["duplicates"])
            return
        detail = response.json().get("detail", response.text) if response.content else response.reason_phrase
        summary.rejected += [(number, f"{response.status_code}: {detail}") for number, _ in batch]
        return
    summary.rejected += [(number, "gave up: the service stayed busy") for number, _ in batch]


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


def ingest_file(path: Path, project: str, base_url: str, key: str, batch_size: int = BATCH) -> Summary:
    summary = Summary()
    episodes = list(read_episodes(path, summary))
    url = f"{base_url.rstrip('/')}/api/v1/projects/{project}/episodes/bulk"
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for start in range(0, len(episodes), batch_size):
            _post(client, url, episodes[start : start + batch_size], summary)
            _progress(min(start + batch_size, len(episodes)), len(episodes))
    sys.stderr.write("\n")
    return summary


def cmd_ingest(_: object, args: argparse.Namespace) -> int:
    key = os.environ.get("MEMSTACK_API_KEY", "")
    if not key:
        print("memstack ingest: set MEMSTACK_API_KEY to an API key", file=sys.stderr)
        return 2
    summary = ingest_file(args.file, args.project, args.url, key, args.batch)
    print(
        f"accepted: {summary.accepted}  duplicates: {summary.duplicates}  rejected: {len(summary.rejected)}"
    )
    for number, reason in sorted(summary.rejected)[:50]:
        print(f"  line {number}: {reason}")
    if len(summary.rejected) > 50:
        print(f"  ... and {len(summary.rejected) - 50} more")
    return 1 if summary.rejected else 0


def add_ingest_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = sub.add_parser("ingest", help="post a JSONL file of episodes in bulk (key in MEMSTACK_API_KEY)")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--project", required=True, help="project id")
    ingest.add_argument("--url", default="http://127.0.0.1:8000", help="API base URL")
    ingest.add_argument(
        "--batch", type=int, default=BATCH, choices=range(1, MAX_BULK_EPISODES + 1), metavar="N"
    )
    ingest.set_defaults(handler=cmd_ingest, needs_settings=False)
