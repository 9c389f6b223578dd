"""The bridge against a real stand-in Space over loopback: turns, media, isolation, tokens, faults, cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

import pytest
from media_factory import jpeg, png, wav

import phi4_bridge._wire.token
from phi4_bridge import (
    AuthError,
    BridgeConfig,
    Done,
    GpuBusy,
    InputRejected,
    Phi4Bridge,
    ProtocolError,
    Queued,
    QuotaExceeded,
    SpaceUnavailable,
    Started,
    StreamTimeout,
    TextDelta,
    Timeouts,
    TokenExpired,
    UploadRejected,
    WorkerError,
)
from phi4_standin.launcher import configure, set_fault, stats


def config_for(standin, **kw) -> BridgeConfig:
    return BridgeConfig(space_url=standin.url, hub_url=standin.hub_url, **kw)


async def events_of(bridge, *args, **kwargs):
    async with bridge.submit(*args, **kwargs) as job:
        return [e async for e in job], job


async def test_text_turn_streams_deltas_then_done(standin_clean):
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        events, job = await events_of(bridge, "Hello there")
    kinds = [type(e) for e in events]
    assert Queued in kinds and Started in kinds and kinds[-1] is Done
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 4, "the reply should arrive over several events"
    done = events[-1]
    assert "".join(deltas) == done.text == job.reply
    assert 'You said: "Hello there".' in done.text
    assert job.status == "done"
    assert done.timings["first_text_s"] <= done.timings["total_s"]


async def test_the_timings_tell_the_steps_before_the_reply_from_the_reply_steps_wait(standin_clean):
    """``Done.timings``: the user step's part (``reply_step_s``, the benchmark's "steps before the reply") apart
    from the bot step's wait for its first words (a Space slow to start its model here)."""
    configure(standin_clean.url, slow_start_s=0.6)
    set_fault(standin_clean.url, "slow_start")
    try:
        async with Phi4Bridge(config_for(standin_clean)) as bridge:
            events, _ = await events_of(bridge, "Hello there")
    finally:
        set_fault(standin_clean.url, None)
    t = events[-1].timings
    assert t["upload_s"] <= t["reply_step_s"] < 0.6 <= t["first_text_s"] - t["reply_step_s"], t
    assert t["first_text_s"] <= t["total_s"], t


async def test_image_and_audio_arrive_intact(standin_clean, tmp_path):
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        reply = await bridge.chat("What do you see and hear?", [png(tmp_path / "cat.png"), wav(tmp_path / "v.wav")])
        photo = await bridge.chat("And here?", [jpeg(tmp_path / "dog.jpg")])  # the Space takes one image a turn
    assert "Image 1: PNG, 37x23." in reply and "Audio 1: 2.5 s." in reply
    assert "Image 1: JPEG, 40x30." in photo


async def test_several_turns_keep_history_and_do_not_reupload(standin_clean, tmp_path):
    image = png(tmp_path / "cat.png", 50, 60)
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        conv = bridge.conversation()
        first = await bridge.chat("first", [image], conversation=conv)
        uploads = stats(standin_clean.url)["uploads"]
        second = await bridge.chat("second", conversation=conv)
        third = await bridge.chat("third", [image], conversation=conv)
    assert "Earlier turns: 0" in first and "PNG, 50x60" in first
    assert "Earlier turns: 1" in second
    assert "Earlier turns: 2" in third and "PNG, 50x60" in third
    assert stats(standin_clean.url)["uploads"] == uploads, "a file already sent is not uploaded again"
    # The Space's own chatbot value, as it returned it: per turn its file entries, the text, then the reply.
    assert [(m["role"], m["content"] if isinstance(m["content"], str) else "file") for m in conv.history][:4] == [
        ("user", "file"), ("user", "first"), ("assistant", first), ("user", "second")]
    assert len(conv.history) == 8


async def test_twenty_conversations_at_once_never_mix(standin_clean, tmp_path):
    configure(standin_clean.url, pace_ms=10)
    images = [png(tmp_path / f"i{n}.png", 10 + n, 5 + n) for n in range(20)]
    try:
        async with Phi4Bridge(config_for(standin_clean)) as bridge:
            replies = await asyncio.gather(*(bridge.chat(f"prompt-{n}-x", [images[n]]) for n in range(20)))
            fetches = bridge.tokens.fetches
    finally:
        configure(standin_clean.url, pace_ms=5)
    for n, reply in enumerate(replies):
        assert f'"prompt-{n}-x"' in reply and f"PNG, {10 + n}x{5 + n}" in reply
        others = [m for m in range(20) if m != n]
        assert not any(f"prompt-{m}-x" in reply for m in others)
    assert fetches == 1, "concurrent turns share one token fetch"


async def test_one_token_fetch_for_many_turns(standin_clean):
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        for n in range(10):
            await bridge.chat(f"turn {n}")
        assert bridge.tokens.fetches == 1
        assert bridge.tokens.source == "anonymous"
    assert stats(standin_clean.url)["token_page_fetches"] == 1


async def test_expired_token_is_refreshed_and_the_turn_retried_once(standin_clean):
    set_fault(standin_clean.url, "token_expired", times=1)
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        reply = await bridge.chat("still works")
        assert 'You said: "still works"' in reply
        assert bridge.tokens.fetches == 2


class TokenClock:
    """The bridge's token clock (``phi4_bridge._wire.token.time``), stopped: it moves only when the test moves it, so
    the turns themselves take no time on it however loaded the machine is."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_token_refetched_after_its_expiry(standin_clean, monkeypatch):
    clock = TokenClock(time.time())
    monkeypatch.setattr(phi4_bridge._wire.token, "time", clock)
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        await bridge.chat("one")
        token = await bridge.tokens.get()
        await bridge.chat("two")
        assert bridge.tokens.fetches == 1, "a fresh token is reused"
        # docs/configuration.md: cached until shortly before it expires (60 s before, for the stand-in's 600 s tokens)
        stale_at = token.expires_at - min(60.0, (token.expires_at - token.issued_at) / 10)
        clock.now = stale_at - 1
        await bridge.chat("three")
        assert bridge.tokens.fetches == 1, "still fresh a second before the margin"
        clock.now = stale_at
        await bridge.chat("four")
        assert bridge.tokens.fetches == 2, "fetched again once the margin is reached"


async def test_signed_in_token_comes_from_the_jwt_endpoint(standin_clean):
    async with Phi4Bridge(config_for(standin_clean, hf_token="hf_testtoken1234567")) as bridge:
        await bridge.chat("signed in")
        assert bridge.tokens.source == "hf_token"
    assert stats(standin_clean.url)["jwt_fetches"] == 1


async def test_refused_hf_token_is_an_auth_error_without_the_token(standin_clean):
    async with Phi4Bridge(config_for(standin_clean, hf_token="not-a-real-token-xyz")) as bridge:
        with pytest.raises(AuthError) as info:
            await bridge.chat("x")
    assert "not-a-real-token-xyz" not in str(info.value)


@pytest.mark.parametrize("fault,kind,state,start", [
    # docs/failures.md's table: the exact type, and the start of the sentence the user sees
    ("quota", QuotaExceeded, None, "Your ZeroGPU quota is used up. "),
    ("no_gpu", GpuBusy, None, "All of the Space's GPUs are busy right now; try again in a minute. ("),
    ("worker_error", WorkerError, None, "The Space's GPU worker failed; try again. ("),
    ("token_expired", TokenExpired, None, "The ZeroGPU token expired. Try again in a minute"),
    ("sleeping", SpaceUnavailable, "sleeping",
     "The Space is sleeping. Open its page on huggingface.co to wake it, then retry in a minute or two."),
    ("not_found", SpaceUnavailable, "not_found", "The Space was not found (HTTP 404): check the Space name and URL."),
    ("drop_stream", SpaceUnavailable, "dropped", "The Space closed the stream before the reply was complete; retry."),
    ("bad_event", ProtocolError, None, "The Space sent an event that is not JSON: '{not json"),
])
async def test_each_fault_has_its_own_error(standin_clean, fault, kind, state, start):
    set_fault(standin_clean.url, fault)
    try:
        async with Phi4Bridge(config_for(standin_clean)) as bridge:
            with pytest.raises(kind) as info:
                await bridge.chat("hello")
    finally:
        set_fault(standin_clean.url, None)
    assert type(info.value) is kind
    assert getattr(info.value, "state", None) == state
    assert str(info.value).startswith(start), str(info.value)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        assert "hello again" in await bridge.chat("hello again"), "a retry works once the fault clears"


async def test_space_down_at_start_is_unavailable(standin_clean):
    set_fault(standin_clean.url, "sleeping")
    try:
        async with Phi4Bridge(config_for(standin_clean)) as bridge:
            with pytest.raises(SpaceUnavailable) as info:
                await bridge.chat("x")
    finally:
        set_fault(standin_clean.url, None)
    assert type(info.value) is SpaceUnavailable and info.value.state == "sleeping"
    assert str(info.value) == ("The Space is sleeping. Open its page on huggingface.co to wake it, then retry in a "
                               "minute or two.")


async def test_unreachable_space():
    cfg = BridgeConfig(space_url="http://127.0.0.1:9", hub_url="http://127.0.0.1:9")
    async with Phi4Bridge(cfg) as bridge:
        with pytest.raises(SpaceUnavailable) as info:
            await bridge.chat("x")
    assert type(info.value) is SpaceUnavailable and info.value.state == "unreachable"
    assert re.fullmatch(r"Cannot reach the Space at http://127\.0\.0\.1:9 \(\w+\); check the network or the URL\.",
                        str(info.value)), str(info.value)


async def test_silence_past_the_first_event_timeout(standin_clean):
    set_fault(standin_clean.url, "slow_start")
    cfg = dataclasses.replace(config_for(standin_clean), timeouts=Timeouts(first_event=1.0, idle=1.0))
    try:
        async with Phi4Bridge(cfg) as bridge:
            with pytest.raises(StreamTimeout) as info:
                await bridge.chat("x")
    finally:
        set_fault(standin_clean.url, None)
    assert str(info.value) == ("The Space took more than 1 s to send more of its reply; it may be overloaded. Try "
                               "again later.")


async def test_leaving_early_cancels_the_job_on_the_space(standin_clean):
    configure(standin_clean.url, pace_ms=300, chunks=20)
    try:
        async with Phi4Bridge(config_for(standin_clean)) as bridge:
            async with bridge.submit("long answer please") as job:
                async for event in job:
                    if isinstance(event, TextDelta):
                        break
            assert job.status == "cancelled"
            for _ in range(50):
                s = stats(standin_clean.url)
                if s["cancelled"] >= 1 and s["active"] == 0:
                    break
                await asyncio.sleep(0.1)
            assert s["cancelled"] >= 1 and s["active"] == 0
            assert len(job.conversation.history) == 0, "a cancelled turn is not added to the history"
    finally:
        configure(standin_clean.url, pace_ms=5, chunks=8)


async def test_cancelling_the_consumer_task_cancels_the_job(standin_clean):
    configure(standin_clean.url, pace_ms=300, chunks=20)
    try:
        async with Phi4Bridge(config_for(standin_clean)) as bridge:
            task = asyncio.create_task(bridge.chat("long"))
            for _ in range(100):  # until the job runs on the Space (not a fixed time: a loaded machine is slower)
                if stats(standin_clean.url)["active"] >= 1:
                    break
                await asyncio.sleep(0.05)
            assert stats(standin_clean.url)["active"] == 1, "the job never reached the Space"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(50):
                if stats(standin_clean.url)["cancelled"] >= 1:
                    break
                await asyncio.sleep(0.1)
            assert stats(standin_clean.url)["cancelled"] == 1 and stats(standin_clean.url)["active"] == 0
    finally:
        configure(standin_clean.url, pace_ms=5, chunks=8)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,reason", [
    (lambda p: _write(p, b""), "empty"),
    (lambda p: _write(p, b"just text, not an image"), "unsupported"),
    (lambda p: _write(p, png(p, 300, 200).read_bytes()[:120]), "damaged"),
    (lambda p: _write(p, jpeg(p.with_suffix(".jpg")).read_bytes()), "extension_mismatch"),
])
async def test_bad_files_are_refused_before_upload(standin_clean, tmp_path, make, reason):
    bad = make(tmp_path / "bad.png")
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        with pytest.raises(UploadRejected) as info:
            await bridge.chat("look", [bad])
    assert info.value.reason == reason and "bad.png" in str(info.value)
    assert stats(standin_clean.url)["uploads"] == 0


async def test_empty_turn_is_refused(standin_clean):
    async with Phi4Bridge(config_for(standin_clean)) as bridge:
        with pytest.raises(InputRejected) as info:
            await bridge.chat("   ")
    assert info.value.reason == "empty" and not isinstance(info.value, UploadRejected)  # no file is at fault


async def test_token_never_in_repr(standin_clean):
    async with Phi4Bridge(config_for(standin_clean, hf_token="hf_secretsecret123")) as bridge:
        await bridge.chat("x")
        token = await bridge.tokens.get()
        assert token.value not in repr(token) and "hf_secret" not in repr(bridge.config)
