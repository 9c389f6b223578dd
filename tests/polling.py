"""Waiting for a condition in an async test: poll it, and fail with what was awaited once ``within`` is over (a bound
with room for a loaded machine, never a bare sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(check: Callable[[], bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within:.0f} s: {what}")
        await asyncio.sleep(0.05)
