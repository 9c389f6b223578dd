"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phi4_bridge.standin.launcher import StandinProcess, reset, start_standin


@pytest.fixture(scope="session")
def standin() -> Iterator[StandinProcess]:
    """A stand-in Space subprocess shared by the whole session (fast pace: 5 ms, 8 chunks).

    ``standin.url`` is the Space origin and ``standin.hub_url`` the Hub origin (the same). Tests that change
    faults, quotas or config should use ``standin_clean`` too, or call ``launcher.reset`` themselves.
    """
    with start_standin(pace_ms=5, chunks=8) as proc:
        yield proc


@pytest.fixture
def standin_clean(standin: StandinProcess) -> StandinProcess:
    """The shared stand-in after ``POST /standin/reset`` (quotas, counters, stamps, fault cleared)."""
    reset(standin.url)
    return standin
