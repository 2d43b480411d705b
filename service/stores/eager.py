"""Run a coroutine at once, in the caller's step, and hand over only what is left if it waits.

The event hub writes each page of events to thousands of streams. Scheduling a task per stream
per page (a future, a wake-up, a step through the response's coroutines) cost about as much CPU
as the socket write itself; most writes never wait (the socket buffer has room), so the hub runs
them to completion inside its own step instead. A write that does wait (a full buffer, uvicorn's
flow control) is returned as `Stalled`, which the stream's own task awaits: the coroutine carries
on from where it stopped, with the task's cancellation delivered into it.
(Python 3.12's eager task factory does the same for whole tasks.)
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class Stalled:
    """The rest of a coroutine that suspended on its first step; await it (once) to finish it."""

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on  # what it yielded to the event loop (a future, or None)

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, value = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation (or a throw) goes to the coroutine itself
                try:
                    value = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coroutine.send(sent)
                except StopIteration:
                    return

    def close(self) -> None:
        """Abandon it (the stream ended): the coroutine is closed where it waits."""
        self._coroutine.close()


def start_eagerly(coroutine: Coroutine[Any, Any, None]) -> Stalled | None:
    """Run `coroutine` now: None if it finished, else `Stalled` with the rest of it. Raises what it
    raised on that first step."""
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return Stalled(coroutine, waiting_on)
