"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP notification receiver, listening (a test may override it)."""
    up = Receiver()
    up.start()
    yield up
    up.stop()
