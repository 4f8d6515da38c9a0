"""Insertion numbers of the MongoDB store (``broker.store.mongo_seq``)."""

from __future__ import annotations

import pytest
from broker.store.mongo_seq import InsertionClock


def test_numbers_follow_the_clock_and_always_increase() -> None:
    now = [1_000]
    clock = InsertionClock(lambda: now[0])
    assert clock.take() == 1_000
    assert clock.take() == 1_001  # the same microsecond: still increasing
    now[0] = 5_000
    assert clock.take() == 5_000
    now[0] = 10  # the clock stepped back
    assert clock.take() == 5_001


def test_blocks_are_consecutive_and_end_at_the_returned_number() -> None:
    clock = InsertionClock(lambda: 100)
    assert clock.take(5) == 100  # 96..100
    assert clock.take(3) == 103  # 101..103: after the last block, even within one microsecond
    with pytest.raises(ValueError, match="at least one"):
        clock.take(0)


def test_a_restarted_replica_numbers_after_what_the_tenant_holds() -> None:
    clock = InsertionClock(lambda: 50)
    clock.advance_past(900)
    clock.advance_past(10)  # never backwards
    assert clock.take() == 901
