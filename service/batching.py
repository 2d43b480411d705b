"""Group commit for asyncio: calls that arrive while a batch is in flight go together in the next.

A caller submits one item and awaits its own result. If fewer than `concurrency` batches
are being processed, a writer task starts at once with what is waiting (so an idle service
adds no delay); otherwise the item waits for a writer to come round, and joins everything
else that arrived meanwhile. Under load the cost of a round trip, a commit or a fsync is
shared by the whole batch instead of paid per call.

`process` gets the items of a batch in arrival order and returns one result per item: a
value, or an exception for that item alone. If `process` itself raises, every item of the
batch gets that exception.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        process: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        concurrency: int,
        max_weight: int,
        weight: Callable[[T], int] = lambda _item: 1,
        name: str = "batcher",
    ) -> None:
        self._process = process
        self._concurrency = concurrency
        self._max_weight = max_weight
        self._weight = weight
        self._name = name
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._writers: set[asyncio.Task[None]] = set()
        self._active = 0  # writers whose loop has not ended; counted in step with the queue

    async def submit(self, item: T) -> R:
        """The item's result. A caller cancelled while its batch is processed does not stop the
        batch: its item may still have taken effect."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._active < self._concurrency:
            self._active += 1
            writer = asyncio.create_task(self._write_batches(), name=self._name)
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await answer

    async def aclose(self) -> None:
        """Wait for the batches in flight (and what is still waiting) to be processed."""
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        total = 0
        while self._waiting:
            weight = self._weight(self._waiting[0][0])
            if batch and total + weight > self._max_weight:
                break
            batch.append(self._waiting.popleft())
            total += weight
        return batch

    async def _write_batches(self) -> None:
        try:
            # No await between finding the queue empty and leaving: an item submitted after
            # that sees this writer gone and starts another.
            while batch := self._next_batch():
                results: Sequence[R | Exception]
                try:
                    results = await self._process([item for item, _ in batch])
                except Exception as exc:  # the whole batch failed alike
                    results = [exc] * len(batch)
                for (_, answer), result in zip(batch, results, strict=True):
                    if answer.done():  # the caller was cancelled meanwhile
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            self._active -= 1
