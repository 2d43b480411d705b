"""Processing a batch of episodes: claim, extract, write the graph, record the outcome.

PostgreSQL holds the truth about every episode. A batch either completes, or raises so the
job is retried, or (on its final attempt) marks its episodes failed with the reason; an
episode whose text the extractor rejects fails on its own without holding up the others.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import redis
from loguru import logger
from neo4j import Driver
from psycopg_pool import ConnectionPool

from service.memory.extraction import Extraction, ExtractionError, Extractor, entity_key
from service.stores import episode_status
from service.stores.episode_status import ClaimedEpisode
from service.stores.events import append_events, status_event
from service.stores.graph_writes import GraphBatch, write_batch
from service.stores.queue import IngestQueue

# A job smaller than this takes in whole waiting jobs until its batch reaches it: one pass,
# one round trip to each store, for what would otherwise be many small jobs.
DRAIN_EPISODES = 500
# How far down the queue a job looks for jobs to absorb.
DRAIN_LOOKAHEAD_JOBS = 200


@dataclass(frozen=True, slots=True)
class IngestDeps:
    pool: ConnectionPool
    graph: Driver
    graph_database: str
    redis: redis.Redis
    extractor: Extractor
    queue: IngestQueue | None = None
    """Given, a job's first attempt absorbs waiting jobs (see `DRAIN_EPISODES`)."""


@dataclass(slots=True)
class IngestOutcome:
    completed: list[uuid.UUID] = field(default_factory=list)
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    skipped: int = 0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def add_extraction(batch: GraphBatch, episode: ClaimedEpisode, extraction: Extraction) -> None:
    """The episode, the entities it mentions (by key) and the facts it states, into the batch."""
    episode_id, project_id = str(episode.id), str(episode.project_id)
    batch.add_episode(episode_id, project_id, episode.source, episode.reference_time)
    for entity in extraction.entities:
        batch.add_mention(
            episode_id, project_id, entity_key(entity.name), entity.name, entity.type, entity.summary
        )
    valid_at = episode.reference_time or episode.created_at
    for fact in extraction.facts:
        relation = (entity_key(fact.source), fact.name, entity_key(fact.target))
        batch.add_fact(episode_id, project_id, relation, fact.fact, valid_at)


def _claim(deps: IngestDeps, episode_ids: list[uuid.UUID], job_id: str | None) -> list[ClaimedEpisode]:
    """The job's episodes, plus on its first attempt those of the waiting jobs it absorbs.

    Absorbed episodes are renamed to this job in PostgreSQL before their jobs leave the queue,
    so a crash in between leaves them processing for a dead worker (the reconciler requeues
    them) and their old jobs find nothing to do.
    """
    with deps.pool.connection() as conn:
        claimed = episode_status.claim(conn, job_id, episode_ids)
        first_attempt = all(e.attempts == 1 for e in claimed)
        room = DRAIN_EPISODES - len(claimed)
        if deps.queue is None or job_id is None or not first_attempt or room <= 0:
            return claimed
        waiting = deps.queue.waiting_blocking(DRAIN_LOOKAHEAD_JOBS)
        if not waiting:
            return claimed
        with conn.transaction():
            absorbed, emptied = episode_status.absorb(conn, job_id, waiting, room)
    if emptied:
        deps.queue.drop_waiting_blocking(emptied)
        logger.debug(
            "{job} absorbed {n} episodes of {j} waiting jobs", job=job_id, n=len(absorbed), j=len(emptied)
        )
    return claimed + absorbed


def ingest_batch(
    deps: IngestDeps, episode_ids: list[uuid.UUID], *, final_attempt: bool, job_id: str | None = None
) -> IngestOutcome:
    """Raises on a retryable failure unless this is the final attempt."""
    outcome = IngestOutcome()
    claimed = _claim(deps, episode_ids, job_id)
    claimed_ids = {e.id for e in claimed}
    outcome.skipped = sum(1 for i in episode_ids if i not in claimed_ids)
    if not claimed:
        return outcome
    project_of = {str(e.id): str(e.project_id) for e in claimed}
    append_events(
        deps.redis, ((project_of[str(e.id)], status_event(str(e.id), "processing")) for e in claimed)
    )

    batch = GraphBatch()
    for episode in claimed:
        try:
            extraction = deps.extractor.extract(episode.content, project_id=str(episode.project_id))
        except ExtractionError as exc:
            if exc.transient and not final_attempt:
                raise
            outcome.failed[episode.id] = f"extraction failed: {exc.reason}"
            continue
        add_extraction(batch, episode, extraction)
    try:
        write_batch(deps.graph, deps.graph_database, batch)
    except Exception as exc:
        if not final_attempt:
            raise
        logger.error("giving up on {n} episodes: {reason}", n=len(batch.episodes), reason=_reason(exc))
        for entry in batch.episodes:
            outcome.failed[uuid.UUID(entry["id"])] = (
                f"gave up after {claimed[0].attempts} attempts: {_reason(exc)}"
            )
    else:
        outcome.completed = [uuid.UUID(entry["id"]) for entry in batch.episodes]

    with deps.pool.connection() as conn, conn.transaction():
        episode_status.complete(conn, outcome.completed)
        episode_status.fail(conn, outcome.failed)
    events = [(project_of[str(i)], status_event(str(i), "completed")) for i in outcome.completed]
    events += [
        (project_of[str(i)], status_event(str(i), "failed", reason)) for i, reason in outcome.failed.items()
    ]
    append_events(deps.redis, events)
    return outcome
