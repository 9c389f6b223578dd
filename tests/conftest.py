"""Shared pytest fixtures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from browser import chromium
from hypothesis import HealthCheck, settings

from phi4_bridge.process import ServerProcess
from phi4_bridge.standin.launcher import reset, start_standin

# Hypothesis under CI: the same examples every run (derandomize), no per-example deadline (a loaded machine is slow,
# not wrong) and no example database to carry between runs. Loaded here, before any test module builds its own
# settings, so those inherit it. Locally the default profile keeps searching new examples.
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI"):
    settings.load_profile("ci")


# Apps the tests start record their turns here, not in the user's data folder (mirror/usage.py); a test that
# checks the usage store passes its own --usage-db.
os.environ.setdefault("PHI4_USAGE_DB", os.path.join(tempfile.gettempdir(), "phi4-mirror-tests-usage.sqlite3"))


@pytest.fixture(scope="session")
def standin() -> Iterator[ServerProcess]:
    """A stand-in Space subprocess shared by the whole session (its default, ``official`` layout; fast pace: 5 ms,
    8 chunks).

    Quotas are an hour (anonymous and signed-in) so that a long session of tests, whose anonymous callers all
    share one loopback address and so one quota bucket, never runs out by accident; quota tests lower them
    with ``launcher.configure(url, anon_quota_seconds=..., quota_seconds=...)`` (reset restores them).

    ``standin.url`` is the Space origin and ``standin.hub_url`` the Hub origin (the same). Tests that change
    faults, quotas or config should use ``standin_clean`` too, or call ``launcher.reset`` themselves.
    """
    quotas = ("--anon-quota-seconds", "3600", "--quota-seconds", "3600")
    with start_standin(pace_ms=5, chunks=8, extra_args=quotas) as proc:
        yield proc


@pytest.fixture(scope="session")
def standin_classic() -> Iterator[ServerProcess]:
    """A stand-in in the ``classic`` layout (fn 10/11, textbox 8: what the known client hard-codes), for the tests
    of that wire shape; a module uses it as its ``standin`` by overriding the fixture."""
    quotas = ("--anon-quota-seconds", "3600", "--quota-seconds", "3600")
    with start_standin(pace_ms=5, chunks=8, extra_args=quotas, layout="classic") as proc:
        yield proc


@pytest.fixture
def standin_clean(standin: ServerProcess) -> ServerProcess:
    """The shared stand-in after ``POST /standin/reset`` (quotas, counters, stamps, fault cleared)."""
    reset(standin.url)
    return standin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one test module (Debian's package; see tests/browser.py)."""
    with chromium() as launched:
        yield launched
