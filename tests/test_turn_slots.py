"""Every turn ``--concurrency`` allows runs at once, also above gradio's own cap on the events its queue runs
together (``max_threads``, 40 by default, counted before any step's own limit).

Against a real ``python app.py --concurrency 44`` and a stand-in whose replies take 4.5 s: 44 conversations
(each its own gradio session, as 44 browser pages) start a turn together over gradio's queue protocol. Each must
show its first words before the first of them ends; with gradio's cap at 40, four waited for a whole reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from app_server import start_app

from benchmarks import sweep
from phi4_standin.launcher import start_standin
from phi4_standin.process import ServerProcess

TURNS = 44  # above gradio's default of 40


@pytest.fixture(scope="module")
def app() -> Iterator[ServerProcess]:
    with start_standin(pace_ms=150, chunks=30, gpus=2 * TURNS) as space, \
            start_app("--space-url", space.url, "--hub-url", space.hub_url, "--concurrency", str(TURNS),
                      "--turns-per-client", "1000") as server:
        yield server


async def test_every_turn_the_concurrency_allows_streams_at_once(app: ServerProcess) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        target = await sweep.find_target(session, "app", app.url, "chat", "app")
        results = await asyncio.gather(*(sweep.one_turn(session, target, f"slot {i}") for i in range(TURNS)))
    assert [r.error for r in results if r.error] == []
    assert all(r.receipts and r.done_at for r in results)
    first_end = min(r.done_at for r in results if r.done_at)
    waited = [r.prompt for r in results if r.receipts[0][0] > first_end]
    assert waited == [], f"{len(waited)} of {TURNS} turns had no words until another turn ended"
