"""`start_eagerly`: a coroutine runs in the caller's step; only a suspended rest is handed over."""

from __future__ import annotations

import asyncio

import pytest

from service.stores.eager import Stalled, start_eagerly


def test_a_coroutine_that_never_waits_finishes_in_the_callers_step() -> None:
    done: list[str] = []

    async def write() -> None:
        done.append("written")

    assert start_eagerly(write()) is None
    assert done == ["written"]


def test_an_error_on_the_first_step_is_raised_to_the_caller() -> None:
    async def write() -> None:
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        start_eagerly(write())


def test_a_coroutine_that_waits_is_finished_by_the_task_awaiting_the_rest() -> None:
    steps: list[str] = []

    async def main() -> None:
        ready = asyncio.get_running_loop().create_future()

        async def write() -> None:
            steps.append("before")
            steps.append(await ready)
            await asyncio.sleep(0)  # a bare yield to the loop after a future
            steps.append("after")

        stalled = start_eagerly(write())
        assert isinstance(stalled, Stalled)
        assert steps == ["before"]
        asyncio.get_running_loop().call_later(0.01, ready.set_result, "woken")
        await stalled

    asyncio.run(main())
    assert steps == ["before", "woken", "after"]


def _waiting_forever(cleaned: list[str]) -> Stalled:
    """A write stalled on a future nothing completes; its cleanup records itself in `cleaned`."""
    never = asyncio.get_running_loop().create_future()

    async def write() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    stalled = start_eagerly(write())
    assert stalled is not None
    return stalled


def test_cancelling_the_awaiting_task_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def main() -> None:
        task = asyncio.ensure_future(_finish(_waiting_forever(cleaned)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned == ["finally"]


def test_closing_an_abandoned_rest_runs_its_cleanup() -> None:
    cleaned: list[str] = []

    async def main() -> None:
        _waiting_forever(cleaned).close()

    asyncio.run(main())
    assert cleaned == ["finally"]


async def _finish(stalled: Stalled) -> None:
    await stalled
