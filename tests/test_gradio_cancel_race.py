"""gradio's cancel race, on the installed gradio: why the stand-in's GPU job ends with its event's task
(``phi4_standin/space.py``) and a paced reply's Space job with its reader's task (``mirror/chat/pacing.py``).

gradio's ``/cancel`` cancels the event's task and closes the step's generator if gradio has stored it. gradio
stores it after the first value is postprocessed: a cancel that lands before leaves the generator suspended, its
``finally`` (where a Space frees its GPU, where the bridge cancels the job) not run. Against a real gradio server
(``cancel_race_space.py``) over gradio's queue protocol, as a browser's client speaks it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from polling import eventually

from phi4_standin.launcher import control
from phi4_standin.process import ServerProcess, free_port

SPACE = Path(__file__).with_name("cancel_race_space.py")
CLOSED_WITHIN_S = 1.0


@pytest.fixture(scope="module")
def space() -> Iterator[ServerProcess]:
    port = free_port()
    with ServerProcess("cancel-race", [sys.executable, str(SPACE), str(port)], port) as server:
        server.wait_ready()
        yield server


async def cancel_and_see_it_closed(url: str, first: str, after_first_value: bool) -> None:
    """Start a run, cancel it (once its generator has started, or once its first value has arrived), and fail
    unless its generator's ``finally`` runs within ``CLOSED_WITHIN_S``."""
    run = f"{first} {uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/config") as resp:
            deps = (await resp.json())["dependencies"]
        fn = {d.get("api_name"): d.get("id", i) for i, d in enumerate(deps)}
        page = uuid.uuid4().hex[:10]

        def runs(kind: str) -> list[str]:
            body = {"data": [], "fn_index": fn["ended"], "session_hash": page, "event_data": None}
            answer: list[str] = control(f"{url}/gradio_api/run/predict", "POST", body)["data"][0][kind]
            return answer

        body = {"data": [run], "fn_index": fn["stream"], "session_hash": page, "event_data": None,
                "trigger_id": None}
        async with session.post(f"{url}/gradio_api/queue/join", json=body) as resp:
            event_id = (await resp.json())["event_id"]
        async with session.get(f"{url}/gradio_api/queue/data?session_hash={page}") as stream:
            if after_first_value:
                async for line in stream.content:
                    if line.startswith(b"data:") and json.loads(line[5:]).get("msg") == "process_generating":
                        break
            else:  # the generator has yielded its first value: gradio is postprocessing it (a few hundred ms)
                await eventually(lambda: run in runs("started"), f"{run} started", within=30)
            await session.post(f"{url}/gradio_api/cancel",
                               json={"event_id": event_id, "session_hash": page, "fn_index": fn["stream"]})
        await eventually(lambda: run in runs("ended"), f"the cancelled {run}'s generator closed", CLOSED_WITHIN_S)


def test_a_run_cancelled_after_its_first_value_is_closed(space: ServerProcess) -> None:
    """The control: the test's way of looking sees a closed generator when gradio closes it."""
    asyncio.run(cancel_and_see_it_closed(space.url, "small", after_first_value=True))


@pytest.mark.xfail(strict=True, reason=(
    "finding (gradio 6.31, not the app's code): a /cancel that lands while gradio postprocesses a streaming "
    "step's first value cancels the event but leaves its generator unclosed, its finally not run (seen run only "
    "when the next event ran); the stand-in and the app's paced replies end their jobs with the event's task"))
def test_a_run_cancelled_while_its_first_value_is_postprocessed_is_closed(space: ServerProcess) -> None:
    asyncio.run(cancel_and_see_it_closed(space.url, "big", after_first_value=False))
