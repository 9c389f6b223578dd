"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from gradio_matrix import matrix_app, matrix_space, nochat_space  # noqa: F401 - the matrix's fixtures, for every module
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


@pytest.fixture(scope="session", autouse=True)
def stores_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every app and ``qa`` command a test starts (they inherit the environment) keeps its QA runs and its usage
    in stores of the session's own (``PHI4_QA_DB``, ``PHI4_USAGE_DB``), never in the user's data folder; a test
    that checks a store passes its own path."""
    folder = tmp_path_factory.mktemp("stores")
    paths = {"PHI4_QA_DB": str(folder / "qa.sqlite3"), "PHI4_USAGE_DB": str(folder / "usage.sqlite3")}
    before = {name: os.environ.get(name) for name in paths}
    os.environ.update(paths)
    yield folder
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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


# ---- a Hub with two Phi-4 Spaces (tests/hub_world.py), for the Hub test modules -------------------------------

@pytest.fixture(scope="module")
def world() -> Iterator[Any]:
    from hub_world import hub_world

    with hub_world() as made:
        yield made


@pytest.fixture
def clean(world: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Hub world as it started (stages, hosts), and no saved HF login of this machine's in this process."""
    world.reset()
    monkeypatch.setattr("phi4_bridge.token.find_hf_token", lambda: None)
    return world
