"""The server's collector settings: startup's survivors frozen, the thresholds raised."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from service.gc_tuning import THRESHOLDS, tune_for_server


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_startup_objects_are_frozen_and_thresholds_raised() -> None:
    survivor = [object()]  # alive across the call: frozen with the rest
    tune_for_server()
    assert gc.get_freeze_count() > 0
    for generation in range(3):  # frozen: in no generation, so no collection walks it
        assert all(o is not survivor for o in gc.get_objects(generation=generation))
    assert gc.get_threshold() == THRESHOLDS


@pytest.mark.usefixtures("restored_gc")
def test_garbage_made_after_startup_is_still_collected() -> None:
    tune_for_server()

    class Cycle:
        other: object = None

    first, second = Cycle(), Cycle()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
