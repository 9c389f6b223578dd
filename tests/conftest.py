"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import forkserver
import pytest
import redis_server
from browser import chromium
from gradio_matrix import matrix_app, matrix_space, nochat_space  # noqa: F401 - the matrix's fixtures, for every module
from guard_clock import clock  # noqa: F401 - the door's hand-moved clock, for test_guard_edges and test_door_edges
from hypothesis import HealthCheck, settings

from phi4_standin.launcher import reset, start_standin
from phi4_standin.process import ServerProcess, child_environment

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


@pytest.fixture(scope="module", autouse=True)
def environment_of_the_module() -> Iterator[None]:
    """The process's environment as it was before the module, after it: a module that builds gradio Blocks in
    process (gradio sets ``HF_HUB_DISABLE_TELEMETRY``) or the app's page (its work folder sets ``GRADIO_TEMP_DIR``)
    changed it for every later module, and every later app and stand-in then differed from the fork server's
    environment and started as a new interpreter (about 5 s of CPU each, most of the suite's starts)."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


FORK_SERVERS: list[forkserver.ForkServers] = []  # the session's, for its counts in the run's last lines


@pytest.fixture(scope="session", autouse=True)
def fork_server(stores_of_the_session: Path) -> Iterator[None]:
    """The session's apps and stand-ins are forked from a process that has imported gradio once
    (tests/forkserver.py says which starts, and why); ``PHI4_TEST_FORKSERVER=0``: each a new interpreter."""
    if os.environ.get("PHI4_TEST_FORKSERVER", "1") == "0":
        yield
        return
    server = forkserver.ForkServers(child_environment(), str(Path(__file__).resolve().parents[1]))
    ServerProcess.launcher = server
    FORK_SERVERS.append(server)
    try:
        yield
    finally:
        ServerProcess.launcher = None
        server.stop()


def start_test_standin(layout: str | None = None) -> ServerProcess:
    """A stand-in as the session's (``standin`` says why these settings), in ``layout`` (default: its own)."""
    quotas = ("--anon-quota-seconds", "3600", "--quota-seconds", "3600")
    return start_standin(pace_ms=5, chunks=8, extra_args=quotas, layout=layout)


@pytest.fixture(scope="session")
def new_standin() -> Callable[..., ServerProcess]:
    """Starts a stand-in like the session's, for a module that needs one of its own (``with new_standin() as s``)."""
    return start_test_standin


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
    with start_test_standin() as proc:
        yield proc


@pytest.fixture(scope="session")
def standin_classic() -> Iterator[ServerProcess]:
    """A stand-in in the ``classic`` layout (fn 10/11, textbox 8: what the known client hard-codes), for the tests
    of that wire shape; a module uses it as its ``standin`` by overriding the fixture."""
    with start_test_standin("classic") as proc:
        yield proc


@pytest.fixture
def standin_clean(standin: ServerProcess) -> ServerProcess:
    """The shared stand-in after ``POST /standin/reset`` (quotas, counters, stamps, fault cleared)."""
    reset(standin.url)
    return standin


class LazyChromium:
    """A module's headless Chromium, launched at its first use and closable in between.

    Why: playwright's sync API keeps its own event loop marked as running in this thread while a browser is up, so
    neither an ``async def`` test nor one calling ``asyncio.run`` can run then. Tests run in any order
    (pytest-randomly), so such a test may come after its module's browser tests: ``browser_only_for_its_tests``
    closes the browser before every test that does not use it, and the next browser test launches it again."""

    live: set[LazyChromium] = set()

    def __init__(self) -> None:
        self._stack: ExitStack | None = None
        self._browser: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._browser is None:
            stack = ExitStack()
            self._browser = stack.enter_context(chromium())
            self._stack = stack
            LazyChromium.live.add(self)
        return getattr(self._browser, name)

    def close(self) -> None:
        stack, self._stack, self._browser = self._stack, None, None
        LazyChromium.live.discard(self)
        if stack is not None:
            stack.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one test module (Debian's package; see tests/browser.py), launched when first used."""
    launched = LazyChromium()
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(autouse=True)
def browser_only_for_its_tests(request: pytest.FixtureRequest) -> None:
    """Before a test that does not use ``browser``, close any Chromium still up (see ``LazyChromium``)."""
    if "browser" not in request.fixturenames:
        for launched in list(LazyChromium.live):
            launched.close()


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
    monkeypatch.setattr("phi4_bridge.config.find_hf_token", lambda: None)
    return world


# ---- order and parallel runs (pytest-randomly, pytest-xdist) --------------------------------------------------------

def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """``-p no:xdist`` (one process, for a debugger) must still accept the ``-n``/``--dist``/``--no-loadscope-reorder``
    of pyproject's addopts; without xdist they are read here and ignored."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist (not loaded)")
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None,
                         help="ignored: pytest-xdist is not loaded")
        group.addoption("--dist", dest="dist", default="no", help="ignored: pytest-xdist is not loaded")
        group.addoption("--no-loadscope-reorder", dest="loadscopereorder", action="store_false",
                        help="ignored: pytest-xdist is not loaded")


# Modules whose tests start apps, clusters, Hubs, venvs or the benchmark of their own (seconds to minutes each, 30 of
# the suite's 38 minutes here): marked ``slow``, left out of the quick subset of the edit-test loop,
# ``-m "not slow and not browser and not matrix"`` (docs/testing.md). Measured with ``--durations``/``--junitxml``
# on a whole run; the quick subset keeps the pure code, the bridge and the stand-in, the CLI and `qa`.
SLOW_MODULES = frozenset({
    "test_app_api", "test_app_auth", "test_app_browser", "test_app_flows", "test_app_history", "test_app_settings",
    "test_benchmarks", "test_boundaries", "test_budget", "test_budget_browser", "test_budget_everywhere",
    "test_caught_promises", "test_cluster", "test_doctor", "test_hub", "test_hub_app", "test_hub_cli",
    "test_hub_private", "test_install", "test_layouts", "test_matrix_app", "test_mcp", "test_openai_api",
    "test_openai_serve", "test_pacing", "test_promises", "test_qa_browser", "test_qa_tab", "test_redis_budget",
    "test_security", "test_security_probe", "test_security_round2", "test_shared_budget", "test_slow_clients",
    "test_standin_layouts", "test_turns_per_client", "test_waiting", "test_zerogpu_everywhere",
})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share an expensive server run in one xdist worker (``--dist loadgroup``), so it starts once.

    Runs after pytest-randomly's shuffle (a wrapper) and before xdist names the groups. A module is a group, so its
    module-scoped app starts once; a test of the matrix is grouped by its Space (``matrix_space``/``nochat_space``,
    session-scoped and parametrized), so each Space and its app start once whatever module asks for them."""
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("xdist_group") is not None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        space = params.get("matrix_space") or params.get("nochat_space")
        if space is not None:
            name = "matrix:" + ("-".join(space) if isinstance(space, tuple) else f"nochat-{space}")
        else:
            name = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(name))
    if items and not items[0].config.pluginmanager.has_plugin("randomly"):
        first = {stem: rank for rank, stem in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: first.get(item.path.stem, len(first)))  # stable: file order otherwise


# The modules whose tests take longest in all (--junitxml of `pytest -n 3`, 2026-12-07), run first: pytest-xdist
# hands out groups in this order (``--no-loadscope-reorder`` in pyproject.toml: by default it puts the groups with the
# most tests first, and test_benchmarks' one long test came last), so a long one collected late no longer keeps one
# worker busy after the others have finished (the longest-first rule of scheduling). A random order (-p randomly)
# keeps its shuffle.
LONGEST_FIRST = ("test_faults", "test_install", "test_cluster", "test_benchmarks", "test_app_flows", "test_hub_app",
                 "test_waiting", "test_promises", "test_standin_browser", "test_security_probe", "test_caught_promises",
                 "test_openai_api", "test_app_browser", "test_redis_budget", "test_qa_browser", "test_budget_browser",
                 "test_doctor", "test_shared_budget", "test_budget", "test_mcp", "test_turns_per_client",
                 "test_app_auth", "test_hub_private")


FORK_COUNTS: dict[str, Counter[str]] = {"forked": Counter(), "servers": Counter(), "declined": Counter()}


def _count_forks() -> None:
    for pool in FORK_SERVERS:
        started = [server for server in pool.servers if server.proc is not None]
        FORK_COUNTS["forked"]["n"] += sum(server.forked for server in started)
        FORK_COUNTS["servers"]["n"] += len(started)
        FORK_COUNTS["declined"].update(pool.main.declined)
    FORK_SERVERS.clear()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its fork counts to the controller, which prints every worker's together."""
    _count_forks()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fork_counts"] = {name: dict(counts) for name, counts in FORK_COUNTS.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    for name, counts in (getattr(node, "workeroutput", {}) or {}).get("fork_counts", {}).items():
        FORK_COUNTS[name].update(counts)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """How many servers were forked and which variable kept the others from it (a leak into the environment shows
    here); the order's seed at the end too: pytest-randomly prints it only in the header, which ``-q`` hides, and a
    failure seen in one random order is found again only in that order."""
    _count_forks()
    why = ", ".join(f"{reason} ({count})" for reason, count in FORK_COUNTS["declined"].most_common())
    forked, servers = FORK_COUNTS["forked"]["n"], FORK_COUNTS["servers"]["n"]
    if forked or why:
        terminalreporter.write_line(f"fork server: {forked} servers forked by {servers} fork servers"
                                    + (f"; started anew for {why}" if why else ""))
    if config.pluginmanager.has_plugin("randomly"):
        seed = config.getoption("randomly_seed", None)
        terminalreporter.write_line(f"random order: the same order again with --randomly-seed={seed}")


# ---- one real Redis per module that asks for it (tests/redis_server.py), emptied for each test that asks for ``fresh``

@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_server.RedisServer]:
    with redis_server.redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def fresh(redis: redis_server.RedisServer) -> redis_server.RedisServer:
    redis.client().flushdb()
    return redis
