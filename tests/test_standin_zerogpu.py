"""Tests of the stand-in Space's ZeroGPU side: faults, tokens, quota, the GPU queue and cancelling.

Against a real stand-in subprocess over loopback (no mocks); the raw-HTTP known client and the event helpers
come from test_standin.py, which covers the wire protocol itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.error
from typing import Any

import aiohttp
import pytest
from polling import eventually
from test_standin import SPACE, KnownClient, completed, failed, last_content, one_turn

from phi4_standin.launcher import configure, set_fault, stamps, stats
from phi4_standin.process import ServerProcess


@pytest.fixture(scope="session")
def standin(standin_classic):
    """This module checks the classic layout's wire shape."""
    return standin_classic


# ---- (d) faults -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "title", "text"),
    [
        ("quota", "ZeroGPU quota exceeded", "You have exceeded your GPU quota (1s requested vs. 0s left). "
         "Create a free account to get more usage quota."),
        ("no_gpu", "ZeroGPU queue timeout", "No GPU was available after 60s"),
        ("worker_error", "ZeroGPU worker error", "ZeroGPU worker error"),
        ("token_expired", "ZeroGPU token error", "ZeroGPU token expired"),
    ],
)  # fmt: skip
async def test_call_faults(standin_clean: ServerProcess, fault: str, title: str, text: str) -> None:
    set_fault(standin_clean.url, fault, times=1)
    error, got_title = failed(await one_turn(standin_clean.url))
    assert text in error and got_title == title
    assert last_content(completed(await one_turn(standin_clean.url)))  # times=1: the next call is fine


async def test_sleeping_and_not_found(standin_clean: ServerProcess) -> None:
    url = standin_clean.url
    async with aiohttp.ClientSession() as s:
        set_fault(url, "sleeping")
        for path in ("/config", "/gradio_api/info"):
            async with s.get(url + path) as resp:
                assert resp.status == 503
        async with s.get(f"{url}/spaces/{SPACE}") as resp:
            assert resp.status == 200 and "sleeping" in await resp.text()
        set_fault(url, "not_found")
        async with s.get(url + "/config") as resp:
            assert resp.status == 404
        async with s.get(f"{url}/spaces/{SPACE}") as resp:
            assert resp.status == 404
        async with s.get(f"{url}/api/spaces/{SPACE}/jwt", headers={"authorization": "Bearer hf_x"}) as resp:
            assert resp.status == 404
        set_fault(url, None)
        async with s.get(url + "/config") as resp:
            assert resp.status == 200


async def test_slow_start(standin_clean: ServerProcess) -> None:
    configure(standin_clean.url, slow_start_s=1.0)
    set_fault(standin_clean.url, "slow_start", times=1)
    started = time.monotonic()
    events = await one_turn(standin_clean.url)
    assert time.monotonic() - started >= 1.0
    assert last_content(completed(events))


async def test_drop_stream(standin_clean: ServerProcess) -> None:
    set_fault(standin_clean.url, "drop_stream", times=1)
    events = await one_turn(standin_clean.url)
    kinds = [e["msg"] for e in events]
    assert "process_completed" not in kinds and kinds.count("process_generating") == 3


async def test_bad_event(standin_clean: ServerProcess) -> None:
    set_fault(standin_clean.url, "bad_event", times=1)
    events = await one_turn(standin_clean.url)
    assert any(e["msg"] == "<malformed>" and e["raw"] == "{not json" for e in events)
    assert last_content(completed(events))


def test_fault_route_rejects_unknown(standin_clean: ServerProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        set_fault(standin_clean.url, "meteor")
    assert info.value.code == 400


# ---- tokens ----------------------------------------------------------------------------------------------------
def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_jwt_endpoint(standin_clean: ServerProcess) -> None:
    url = f"{standin_clean.url}/api/spaces/{SPACE}/jwt?expiration=2026-11-27T12%3A00%3A00.000Z&include_pro_status=true"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"authorization": "Bearer hf_abc"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        for headers in ({"authorization": "Bearer nope"}, {}):
            async with s.get(url, headers=headers) as resp:
                assert resp.status == 401
    claims = _claims(body["token"])
    assert claims["kind"] == "user" and claims["exp"] == body["exp"] > time.time()
    assert stats(standin_clean.url)["jwt_fetches"] == 3


async def test_bad_and_expired_tokens(standin_clean: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, standin_clean.url)
        await client.fetch_token()
        client.headers["x-zerogpu-token"] = client.headers["x-zerogpu-token"][:-2] + "xx"
        error, title = failed(await client.bot_step([[{"role": "user", "content": "x"}], []]))
        assert error == "Invalid ZeroGPU token" and title == "ZeroGPU token error"
        configure(standin_clean.url, token_ttl=0)
        await client.fetch_token()
        error, _ = failed(await client.bot_step([[{"role": "user", "content": "x"}], []]))
        assert "ZeroGPU token expired" in error
        client.headers["x-zerogpu-token"] = "[object Object]"  # the known client's "no token"
        assert last_content(completed(await client.bot_step([[{"role": "user", "content": "x"}], []])))


# ---- (f) quota -------------------------------------------------------------------------------------------------
async def test_quota_exhaustion(standin_clean: ServerProcess) -> None:
    configure(standin_clean.url, anon_quota_seconds=2, quota_seconds=3)
    for _ in range(2):
        events = await one_turn(standin_clean.url)
        assert last_content(completed(events))
    (log,) = [e for e in events if e["msg"] == "log"]  # the last allowed call warns that quota runs low
    assert log["level"] == "warning" and log["log"] == "ZeroGPU quota running low: 0s left"
    error, title = failed(await one_turn(standin_clean.url))
    assert title == "ZeroGPU quota exceeded"
    assert error == (
        "You have exceeded your GPU quota (1s requested vs. 0s left). Create a free account to get more usage quota."
    )
    async with aiohttp.ClientSession() as s:  # a signed-in user has a quota of their own
        async with s.get(f"{standin_clean.url}/api/spaces/{SPACE}/jwt", headers={"authorization": "Bearer hf_q"}) as r:
            token = (await r.json())["token"]
        client = KnownClient(s, standin_clean.url)
        client.headers["x-zerogpu-token"] = token
        for _ in range(3):
            assert last_content(completed(await client.bot_step([[{"role": "user", "content": "x"}], []])))
        error, _ = failed(await client.bot_step([[{"role": "user", "content": "x"}], []]))
    assert re.fullmatch(r"You have exceeded your free ZeroGPU quota \(1s requested vs\. 0s left\)\. Try again in "
                        r"\d:\d\d:\d\d\. Subscribe to Hugging Face PRO to get 40 min of ZeroGPU quota a day - "
                        r"https://huggingface\.co/subscribe/pro\?from=ZeroGPU", error), error


# ---- (g) queue: more callers than GPUs ---------------------------------------------------------------------------
async def test_estimation_rank_when_gpus_busy(standin_clean: ServerProcess) -> None:
    configure(standin_clean.url, pace_ms=60, chunks=5)
    results = await asyncio.gather(*(one_turn(standin_clean.url, f"caller {i}") for i in range(5)))
    ranks = [e["rank"] for events in results for e in events if e["msg"] == "estimation"]
    assert max(ranks) > 0
    for i, events in enumerate(results):
        assert f'You said: "caller {i}".' in last_content(completed(events))


# ---- cancel ----------------------------------------------------------------------------------------------------
async def test_cancel_stops_generator(standin_clean: ServerProcess) -> None:
    url = standin_clean.url
    configure(url, pace_ms=200, chunks=30)
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, url)
        body = {"data": [[{"role": "user", "content": "long"}], []], "event_data": None, "fn_index": 11,
                "trigger_id": 8, "session_hash": client.session_hash}  # fmt: skip
        async with s.post(f"{url}/gradio_api/queue/join", json=body) as resp:
            event_id = (await resp.json())["event_id"]
        async with s.get(f"{url}/gradio_api/queue/data?session_hash={client.session_hash}") as resp:
            async for line in resp.content:
                if b"process_generating" in line:
                    break
            assert stats(url)["active"] == 1
            cancel = {"event_id": event_id, "session_hash": client.session_hash, "fn_index": 11}
            async with s.post(f"{url}/gradio_api/cancel", json=cancel) as cancelled:
                assert cancelled.status == 200
    for _ in range(50):
        numbers = stats(url)
        if numbers["cancelled"] == 1 and numbers["active"] == 0:
            break
        await asyncio.sleep(0.1)
    assert numbers["cancelled"] == 1 and numbers["active"] == 0
    assert len(stamps(url, client.session_hash)) < 30


# ---- a cancel between a yield and gradio keeping the generator ------------------------------------------------
async def test_a_cancel_while_gradio_postprocesses_the_first_value_ends_the_job(standin_clean: ServerProcess) -> None:
    """The same race over the wire (``test_gradio_cancel_race.py`` shows it is gradio's): a chat of 40,000 earlier
    messages takes gradio about half a second to postprocess with the first chunk, and a cancel sent as soon as the job
    runs often lands then (not always: this client sees the job start a little late at times, so it tries
    ``ATTEMPTS`` times). Each job must end within 2 s, not when the next event runs: before the stand-in tied its
    jobs to their tasks, a job hit so stayed active for as long as anyone looked."""
    url = standin_clean.url
    configure(url, pace_ms=50, chunks=100)  # a reply of 5 s
    history = [{"role": "user", "content": f"message {i} " + "x" * 200} for i in range(40_000)]
    async with aiohttp.ClientSession() as s:
        for attempt in range(1, ATTEMPTS + 1):
            client, calls = KnownClient(s, url), stats(url)["calls"]
            body = {"data": [[*history, {"role": "user", "content": "long"}], []], "event_data": None,
                    "fn_index": 11, "trigger_id": 8, "session_hash": client.session_hash}  # fmt: skip
            async with s.post(f"{url}/gradio_api/queue/join", json=body) as resp:
                event_id = (await resp.json())["event_id"]
            async with s.get(f"{url}/gradio_api/queue/data?session_hash={client.session_hash}"):
                deadline = time.monotonic() + 30
                while stats(url)["calls"] == calls:  # the job has yielded its first chunk: gradio postprocesses it
                    assert time.monotonic() < deadline, "the job never started"
                    await asyncio.sleep(0.005)
                cancel = {"event_id": event_id, "session_hash": client.session_hash, "fn_index": 11}
                async with s.post(f"{url}/gradio_api/cancel", json=cancel) as cancelled:
                    assert cancelled.status == 200
            await eventually(lambda: stats(url)["active"] == 0, f"cancelled job {attempt} ends on the Space", 2.0)
    assert stats(url)["cancelled"] == ATTEMPTS


ATTEMPTS = 4


async def test_a_job_ends_with_its_task_even_when_its_generator_is_left_suspended() -> None:
    """gradio's ``/cancel`` cancels the event's task. When that lands after the bot step's generator yielded and
    before gradio stored the generator, nobody closes it: its ``finally`` would run only when something later drops
    it. The stand-in's GPU job must end with the task, as a ZeroGPU job does."""
    from phi4_standin.reply import TurnInput
    from phi4_standin.space import Admission, Tunables, stream_text
    from phi4_standin.zerogpu import ZeroGPU

    zgpu = ZeroGPU()
    kept: list[Any] = []  # as gradio's process_api frame, in the cancelled task's exception, keeps the generator
    first = asyncio.Event()

    async def gradio_event_task() -> None:
        gen = stream_text(zgpu, Tunables(pace_ms=10, chunks=50, slow_start_s=0, drop_after=0),
                          Admission("s", None), TurnInput("a long one"))
        kept.append(gen)
        await gen.__anext__()
        first.set()
        await asyncio.sleep(60)  # gradio postprocessing the first chunk, when the cancel comes

    task = asyncio.create_task(gradio_event_task())
    await asyncio.wait_for(first.wait(), 10)
    assert zgpu.stats.active == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert kept, "the generator must still be alive for this test to mean anything"
    assert (zgpu.stats.active, zgpu.stats.cancelled) == (0, 1), zgpu.stats.as_json()
    await kept[0].aclose()  # closed at last: counted once, not twice
    assert (zgpu.stats.active, zgpu.stats.cancelled) == (0, 1), zgpu.stats.as_json()
