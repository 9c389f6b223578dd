"""The bridge against every shape the real Space may have (the stand-in's layouts), with no flag saying which:
it finds its way from ``/config`` alone. Each reply names what the Space's bot step saw over the whole
history (``Seen:``) and the sampling values it got (``Settings:``), so a lost or reordered file, a skipped user
step or a slider left at ``null`` shows in the text.
"""

from __future__ import annotations

import asyncio

import pytest
from media_factory import png, wav

from phi4_bridge import BridgeConfig, InputRejected, Phi4Bridge, QuotaExceeded, RemoteError, TextDelta
from phi4_standin.launcher import configure, reset, set_fault, start_standin, stats

LAYOUTS = ["official", "classic", "chatinterface"]
SETTINGS = {  # what each layout's bot step reports with its defaults
    "official": " Settings: top_p=0.95, top_k=50, temperature=0.8, repetition_penalty=1.05, max_new_tokens=512.",
    "classic": "",
    "chatinterface": " Settings: temperature=0.8, max_new_tokens=512.",
}


@pytest.fixture(scope="module", params=LAYOUTS)
def space(request):
    standin = start_standin(layout=request.param, pace_ms=5, chunks=6)
    standin.layout = request.param
    yield standin
    standin.stop()


@pytest.fixture
def clean(space):
    reset(space.url)
    configure(space.url, pace_ms=5, chunks=6)
    return space


def bridge_for(space) -> Phi4Bridge:
    return Phi4Bridge(BridgeConfig(space_url=space.url, hub_url=space.hub_url))


async def test_files_and_turns_reach_the_bot_step(clean, tmp_path):
    image, voice = png(tmp_path / "cat.png"), wav(tmp_path / "v.wav")
    async with bridge_for(clean) as bridge:
        conv = bridge.conversation()
        first = await bridge.chat("What is this picture?", [image, voice], conversation=conv)
        second = await bridge.chat("And its colour?", conversation=conv)
    settings = SETTINGS[clean.layout]
    assert first == ('You said: "What is this picture?". Image 1: PNG, 37x23. Audio 1: 2.5 s. Earlier turns: 0. '
                     'Seen: turn 1 image PNG 37x23; turn 1 audio 2.5 s; turn 1 text "What is this".' + settings)
    assert second == ('You said: "And its colour?". Earlier turns: 1. Seen: turn 1 image PNG 37x23; turn 1 audio '
                      '2.5 s; turn 1 text "What is this"; turn 2 text "And its colour?".' + settings)


async def test_a_setting_reaches_the_bot_step_and_a_wrong_one_is_refused_before_sending(clean):
    async with bridge_for(clean) as bridge:
        offered = await bridge.options()
        if clean.layout == "classic":
            assert offered == {}
            with pytest.raises(InputRejected, match="no setting 'temperature'. It offers: none"):
                await bridge.chat("hot", options={"temperature": 0.2})
            return
        reply = await bridge.chat("cool", options={"temperature": 0.2, "max_new_tokens": 64})
        assert "temperature=0.2" in reply and "max_new_tokens=64." in reply
        calls = stats(clean.url)["calls"]
        with pytest.raises(InputRejected, match=r"9 is out of range for temperature \(0 to 2; default 0.8\)"):
            await bridge.chat("too hot", options={"temperature": 9})
        assert stats(clean.url)["calls"] == calls


async def test_retry_with_a_history_restores_the_chat_the_space_returned(clean, tmp_path):
    """The app's Retry of turn 2 after three turns: the Space sees turn 1 and turn 2 again, never turn 3."""
    image = png(tmp_path / "cat.png")
    async with bridge_for(clean) as bridge:
        conv = bridge.conversation()
        one = await bridge.chat("first words here", [image], conversation=conv)
        await bridge.chat("second", conversation=conv)
        await bridge.chat("third", conversation=conv)
        history = [{"role": "user", "content": [{"type": "file", "file": {"path": str(image)}},
                                                {"type": "text", "text": "first words here"}]},
                   {"role": "assistant", "content": [{"type": "text", "text": one}]}]
        uploads = stats(clean.url)["uploads"]
        again = await bridge.chat("second", history=history, conversation=conv)
        assert stats(clean.url)["uploads"] == uploads, "restored, not uploaded again"
    assert again == ('You said: "second". Earlier turns: 1. Seen: turn 1 image PNG 37x23; turn 1 text "first words '
                     'here"; turn 2 text "second".' + SETTINGS[clean.layout])


async def test_a_history_the_conversation_never_saw_is_replayed_through_the_user_step(clean, tmp_path):
    image = png(tmp_path / "cat.png")
    history = [{"role": "user", "content": [{"type": "file", "file": {"path": str(image)}},
                                            {"type": "text", "text": "an old question"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "an old answer"}]},
               {"role": "user", "content": "another one"}, {"role": "assistant", "content": "fine"}]
    async with bridge_for(clean) as bridge:
        calls = stats(clean.url)["calls"]
        reply = await bridge.chat("now", history=history)
    assert stats(clean.url)["calls"] == calls + 1, "replaying costs no bot step (no GPU)"
    assert reply == ('You said: "now". Earlier turns: 2. Seen: turn 1 image PNG 37x23; turn 1 text "an old '
                     'question"; turn 2 text "another one"; turn 3 text "now".' + SETTINGS[clean.layout])


async def test_leaving_early_cancels_the_bot_step_on_the_space(clean):
    configure(clean.url, pace_ms=200, chunks=20)
    async with bridge_for(clean) as bridge:
        async with bridge.submit("a long answer") as job:
            async for event in job:
                if isinstance(event, TextDelta):
                    break
        assert job.status == "cancelled"
        for _ in range(100):
            if stats(clean.url)["active"] == 0 and stats(clean.url)["cancelled"] >= 1:
                break
            await asyncio.sleep(0.05)
    assert stats(clean.url)["active"] == 0 and stats(clean.url)["cancelled"] == 1


async def test_the_quota_fault_is_a_quota_error_on_every_layout(clean):
    set_fault(clean.url, "quota", times=1)
    async with bridge_for(clean) as bridge:
        with pytest.raises(QuotaExceeded, match="Your ZeroGPU quota is used up"):
            await bridge.chat("x")
        assert 'You said: "y"' in await bridge.chat("y")


@pytest.mark.parametrize("space", ["official"], indirect=True)
async def test_the_spaces_own_refusal_reaches_the_caller_in_its_words(clean, tmp_path):
    """The official layout's user step allows one image a turn; its gr.Error comes back as its sentence."""
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png", 10, 10)
    async with bridge_for(clean) as bridge:
        calls = stats(clean.url)["calls"]
        with pytest.raises(RemoteError) as info:
            await bridge.chat("compare", [a, b])
    assert str(info.value) == "The Space says: Please upload only one image file."
    assert stats(clean.url)["calls"] == calls, "the bot step did not run"
