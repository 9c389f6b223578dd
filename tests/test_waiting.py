"""Promises of the manual (docs/) about waiting and credentials that had no test of their own: the queue position the
chat shows while a turn waits, a full Space queue, the automatic retry after a refused ZeroGPU token, and
``--share`` with ``--auth``.

Real processes: stand-ins started here (one GPU, a queue of one, a restart), the app as a program, Chromium.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from app_server import start_app

from phi4_bridge import BridgeConfig, GpuBusy, Phi4Bridge, TextDelta
from phi4_bridge.events import Queued
from phi4_bridge.job import Job
from phi4_standin.launcher import configure, start_standin, stats
from phi4_standin.process import ServerProcess, free_port

QUEUE_FULL = "The Space is busy: its queue is full. Try again in a minute."


def config_for(url: str) -> BridgeConfig:
    return BridgeConfig(space_url=url, hub_url=url)


@pytest.fixture
def one_gpu_queue_of_one() -> AsyncIterator[ServerProcess]:
    """A Space with one GPU whose queue holds one waiting job: a second turn waits, a third is refused."""
    standin = start_standin(gpus=1, pace_ms=100, chunks=60, extra_args=["--queue-size", "1"])
    try:
        yield standin
    finally:
        standin.stop()


async def until(job: Job, kind: type) -> None:
    """Read ``job``'s events until one of ``kind`` arrives (the job then stays open for the test)."""
    async for event in job:
        if isinstance(event, kind):
            return
    raise AssertionError(f"the job ended before a {kind.__name__} event")


# ---- a full queue on the Space (docs/failures.md row "the Space's queue is full (HTTP 503)") -------------------------

async def test_a_full_space_queue_is_gpu_busy_in_readmes_words(one_gpu_queue_of_one):
    url = one_gpu_queue_of_one.url
    async with Phi4Bridge(config_for(url)) as bridge:
        async with bridge.submit("runs", conversation=bridge.conversation()) as running, \
                bridge.submit("waits", conversation=bridge.conversation()) as waiting:
            await asyncio.wait_for(until(running, TextDelta), 30)
            await asyncio.wait_for(until(waiting, Queued), 30)
            with pytest.raises(GpuBusy) as info:
                await bridge.chat("one too many")
            assert str(info.value).startswith(QUEUE_FULL), str(info.value)
            await running.cancel()
            await waiting.cancel()
    # the Space accepts a cancel at once but ends the job's task at its next step (100 ms a chunk here): give it
    # a few seconds on a loaded machine, and fail if a job still runs after that
    wait_until(lambda: stats(url)["active"] == 0, "the cancelled jobs end on the Space", timeout=5.0)


def test_a_full_space_queue_reaches_an_app_visitor_in_the_same_words(one_gpu_queue_of_one):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url = one_gpu_queue_of_one.url
    message = {"text": "a long one", "files": []}
    with start_app("--space-url", url, "--hub-url", url, "--no-fallback") as app:
        a, b, c = (Client(app.url, verbose=False) for _ in range(3))
        running = a.submit(message, api_name="/chat")
        wait_until(lambda: bool(running.outputs()), "the first turn streams")
        waiting = b.submit(message, api_name="/chat")
        wait_until(lambda: space_queue(url) == 1, "the second turn waits in the Space's queue")
        with pytest.raises(AppError) as info:
            c.predict({"text": "one too many", "files": []}, api_name="/chat")
        assert str(info.value).startswith(QUEUE_FULL), str(info.value)
        running.cancel()
        waiting.cancel()


# ---- "the bridge fetches a new token and retries once by itself" after a refused (not expired) token ---------------

async def test_a_refused_token_is_replaced_and_the_turn_retried_once():
    """The Space restarts and no longer trusts the token the bridge holds ("Invalid ZeroGPU token"): the bridge
    fetches a new one and the turn goes through, with no error for the user."""
    port = free_port()
    first = start_standin(port=port, pace_ms=5, chunks=4)
    async with Phi4Bridge(config_for(first.url)) as bridge:
        try:
            assert (await bridge.chat("before")).startswith('You said: "before".')
        finally:
            first.stop()
        assert bridge.tokens.fetches == 1
        second = start_standin(port=port, pace_ms=5, chunks=4)  # the same address, a new token secret
        try:
            assert (await bridge.chat("after")).startswith('You said: "after".')
            assert bridge.tokens.fetches == 2
            counts = stats(second.url)  # the old token refused once, a new one fetched, the turn run once
            assert (counts["tokens_seen"], counts["errors"], counts["token_page_fetches"], counts["calls"]) == \
                (2, 1, 1, 1), counts
        finally:
            second.stop()


# ---- --share with --auth: the given login, no made-up one ----------------------------------------------------------

def test_share_with_auth_uses_the_given_login_and_makes_none_up(tmp_path: Path) -> None:
    from gradio_client import Client

    with start_app("--standin", "--share", "--auth", "carol:a-long-pass", env={"HOME": str(tmp_path)},
                   timeout=120) as app:
        wait_until(lambda: "share link could not be created" in app.log_text(), "the app says the link failed", 30)
        log = app.log_text()
        assert "--share without --auth" not in log and "password:" not in log, log  # no login made up
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(app.url + "/config", timeout=10)  # noqa: S310 - loopback
        assert info.value.code == 401
        reply = Client(app.url, auth=("carol", "a-long-pass"), verbose=False).predict(
            {"text": "shared?", "files": []}, api_name="/chat")
        assert reply.startswith('You said: "shared?".')
        assert "a-long-pass" not in app.log_text()


# ---- "while waiting, the chat shows the queue position and estimate" (Chromium) -------------------------------------

@pytest.mark.browser
def test_the_chat_shows_the_queue_position_while_a_turn_waits(one_gpu_queue_of_one):
    """Its own Chromium, closed when it ends (not the module's): playwright's sync API holds an event loop while it
    runs, so the module's async tests could not run after it; so this test may run in any order."""
    from browser import chromium, open_page, wait_for
    from gradio_client import Client

    url = one_gpu_queue_of_one.url
    with chromium() as browser, start_app("--space-url", url, "--hub-url", url, "--no-fallback") as app:
        with open_page(browser, app.url) as page:
            other = Client(app.url, verbose=False)
            configure(url, chunks=2)  # one quick turn first: gradio estimates a wait only once a job has finished
            assert other.predict({"text": "warm up", "files": []}, api_name="/chat").startswith('You said: "warm')
            configure(url, chunks=60)
            other = other.submit({"text": "first in line", "files": []}, api_name="/chat")
            wait_until(lambda: bool(other.outputs()), "another visitor's turn holds the only GPU")
            page.locator("#prompt textarea").fill("my turn")
            page.keyboard.press("Enter")
            text = wait_for(page, r"In the Space's queue: position 1 of 1, about \d+ s")
            assert "You said" not in text  # still waiting: the other visitor's turn runs alone
            wait_for(page, 'You said: "my turn"', timeout=60)
            done = wait_for(page, r"Settings: ", timeout=60)  # the reply is complete
            assert "In the Space's queue" not in done, "the queue note stays after the reply came"
        assert other.result(timeout=60).startswith('You said: "first in line".')


def space_queue(url: str) -> int:
    """How many jobs wait in the Space's gradio queue (its own ``/queue/status`` route)."""
    with urllib.request.urlopen(url + "/gradio_api/queue/status", timeout=10) as response:  # noqa: S310 - loopback
        return int(json.load(response)["queue_size"])


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")

