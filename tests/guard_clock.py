"""The monotonic clock the door's bookkeeping reads (the login throttle, the stream table), moved by hand, so a
test of a minute's window or lockout takes no minute: ``from guard_clock import Clock, clock``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mirror.door.guard as guard_module


class Clock:
    """``mirror.door.guard``'s ``time.monotonic``: ``clock.now`` is what it reads; a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    fake = Clock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(guard_module.time, "monotonic", fake)
        yield fake
