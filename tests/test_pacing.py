"""The chat's frame rate (mirror/chat/pacing.py, mirror/chat/chatbot.py): a fast Space does not make the app re-send the
whole chat a hundred times a second, the last words are never held back, and Stop still ends the source at once.

The first tests drive ``batches`` with real async generators (pure logic); the last drives the app's own chat
step over gradio's queue protocol, with a stand-in that streams 1,000 chunks a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import gradio as gr
import pytest
from app_server import start_app

from benchmarks.long_chat import earlier_messages, find_respond, turn
from mirror.chat import chat_values as cv
from mirror.chat.chatbot import remember_forms
from mirror.chat.pacing import batches
from phi4_bridge import BridgeConfig, Phi4Bridge
from phi4_standin.launcher import start_standin

INTERVAL = 0.05


async def ticks(n: int, every: float, urgent_at: int = -1) -> AsyncIterator[str]:
    for i in range(n):
        await asyncio.sleep(every)
        yield "urgent" if i == urgent_at else f"t{i}"


async def collect(source: AsyncIterator[str], interval: float = INTERVAL) -> list[list[str]]:
    return [b async for b in batches(source, interval, urgent=lambda x: x == "urgent")]


def test_a_fast_source_comes_out_at_the_frame_rate_with_nothing_lost() -> None:
    started = time.monotonic()
    out = asyncio.run(collect(ticks(200, 0.001)))
    took = time.monotonic() - started
    assert [x for b in out for x in b] == [f"t{i}" for i in range(200)]
    assert len(out) <= took / INTERVAL + 2, (len(out), took)  # one list per interval, plus the first and the end


def test_a_consumer_whose_update_work_grows_gets_fewer_frames_but_at_least_two_a_second() -> None:
    """The frame lasts WORK_SHARE times the consumer's work on the last list (gradio's walk of a longer chat), up
    to MAX_FRAME_S: 20 ms of work a list makes frames of ~200 ms; 300 ms of work still lets text out every 0.5 s."""
    promised_share, promised_max = 10.0, 0.5  # mirror/chat/pacing.py's WORK_SHARE and MAX_FRAME_S

    async def consume(work_s: float) -> list[float]:
        gaps: list[float] = []
        last = None
        async for _ in batches(ticks(200, 0.0025), INTERVAL):
            now = time.monotonic()
            if last is not None:
                gaps.append(now - last)
            time.sleep(work_s)  # noqa: ASYNC251 - the consumer's work, as gradio's postprocess holds the loop
            last = time.monotonic()
        return gaps[:-1]  # the end comes at once

    light = asyncio.run(consume(0.0))
    heavy = asyncio.run(consume(0.02))
    slow = asyncio.run(consume(0.3))
    # from the end of one list's work to the next list: the frame less that work
    assert sorted(light)[len(light) // 2] < 2 * INTERVAL, light
    assert min(heavy) >= 0.5 * (promised_share * 0.02 - 0.02), heavy  # half the promise: room, and 1x fails
    assert max(slow) < 2 * promised_max, slow


def test_an_urgent_item_goes_out_at_once_with_what_came_before_it() -> None:
    async def main() -> tuple[list[list[str]], float]:
        seen: list[list[str]] = []
        at = 0.0
        async for batch in batches(ticks(5, 0.002, urgent_at=3), 10.0, urgent=lambda x: x == "urgent"):
            seen.append(batch)
            if "urgent" in batch:
                at = time.monotonic()
        return seen, at

    started = time.monotonic()
    seen, at = asyncio.run(main())
    assert seen == [["t0"], ["t1", "t2", "urgent"], ["t4"]]
    assert at - started < 2 * 10.0 / 10  # not held for the 10 s interval


def test_the_first_words_after_a_note_are_not_held() -> None:
    """"Answering…" (urgent) and the first words a moment later: both go out at once, not a frame apart."""
    async def main() -> float:
        async def source() -> AsyncIterator[str]:
            yield "urgent"
            await asyncio.sleep(0.005)
            yield "first words"
            await asyncio.Event().wait()

        paced = batches(source(), 10.0, urgent=lambda x: x == "urgent")
        assert await anext(paced) == ["urgent"]
        started = time.monotonic()
        assert await asyncio.wait_for(anext(paced), 1.0) == ["first words"]
        await paced.aclose()
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.0


def test_held_text_goes_out_when_its_frame_is_due_even_if_the_source_then_pauses() -> None:
    async def main() -> float:
        resume = asyncio.Event()

        async def source() -> AsyncIterator[str]:
            yield "first"  # after a quiet spell: out at once
            yield "second"  # within the frame: held...
            await resume.wait()  # ...and the Space pauses
            yield "third"

        paced = batches(source(), INTERVAL)
        assert await anext(paced) == ["first"]
        started = time.monotonic()
        second = await asyncio.wait_for(anext(paced), 2 * INTERVAL)  # the promise: within one frame
        took = time.monotonic() - started
        assert second == ["second"]
        resume.set()
        assert [b async for b in paced] == [["third"]]
        return took

    assert asyncio.run(main()) < 2 * INTERVAL


def test_closing_the_stream_ends_the_source_at_once() -> None:
    async def main() -> None:
        ended = asyncio.Event()

        async def source() -> AsyncIterator[str]:
            try:
                yield "a"
                await asyncio.Event().wait()  # a Space that never answers again
            finally:
                ended.set()  # where the bridge cancels the job on the Space

        paced = batches(source(), INTERVAL)
        assert await anext(paced) == ["a"]
        await paced.aclose()  # what gradio does on Stop
        assert ended.is_set()

    asyncio.run(main())


def test_a_stream_whose_reader_is_cancelled_between_two_batches_ends_the_source() -> None:
    """gradio's cancel (Stop on a ``/chat`` client) cancels the event's task. When it lands after the chat step
    yielded and before gradio stored the step's generator, nobody closes that generator; the Space's job must
    still end with the task, not run to its end and spend the visitor's GPU quota."""
    async def main() -> None:
        ended = asyncio.Event()

        async def source() -> AsyncIterator[str]:
            try:
                yield "a"
                await asyncio.Event().wait()  # a Space still answering
            finally:
                ended.set()  # where the bridge cancels the job on the Space

        paced = batches(source(), INTERVAL)

        async def gradio_event() -> None:
            assert await anext(paced) == ["a"]
            await asyncio.sleep(60)  # gradio postprocessing the update when the cancel comes

        task = asyncio.create_task(gradio_event())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(ended.wait(), 2 * INTERVAL)  # the stream itself was never closed
        await paced.aclose()

    asyncio.run(main())


def test_a_failure_of_the_source_comes_after_what_it_sent() -> None:
    async def main() -> list[list[str]]:
        async def source() -> AsyncIterator[str]:
            yield "a"
            yield "b"
            raise RuntimeError("the Space went away")

        seen = []
        with pytest.raises(RuntimeError, match="went away"):
            async for batch in batches(source(), 10.0):
                seen.append(batch)
        return seen

    assert [x for b in asyncio.run(main()) for x in b] == ["a", "b"]


def test_a_source_cancelled_on_its_own_ends_the_stream_instead_of_hanging_it() -> None:
    async def main() -> None:
        async def source() -> AsyncIterator[str]:
            yield "a"
            raise asyncio.CancelledError  # as a library's own cancellation would surface

        seen = []
        with pytest.raises(asyncio.CancelledError, match="the source was cancelled"):  # not wait_for's below
            async for batch in batches(source(), 10.0):
                seen.append(batch)
        assert seen == [["a"]]

    asyncio.run(asyncio.wait_for(main(), 5.0))


def test_each_message_is_made_once_and_looks_as_gradio_makes_it() -> None:
    history = earlier_messages(6) + [cv.note("⏳ a note", "text"), cv.user_message("hi", [])]
    chatbot = remember_forms(gr.Chatbot())
    first = chatbot.postprocess(history)
    again = chatbot.postprocess(history[:-1] + [cv.bot_message("a new reply")])
    assert first == gr.Chatbot().postprocess(history).model_dump()
    assert all(a is b for a, b in zip(first[:-1], again[:-1]))  # the earlier messages were not made again
    assert again[-1]["content"][0]["text"] == "a new reply"
    changed = dict(history[0], content=[{"type": "text", "text": "edited"}])  # a new dict: made afresh
    assert chatbot.postprocess([changed])[0]["content"][0]["text"] == "edited"


def test_gradios_file_walks_pass_over_messages_without_files_and_still_serve_files(tmp_path) -> None:
    """gradio's two walks of an update (files into its cache, then its root URL onto file URLs) hand the forms of
    messages with no file on as they are, so an update at 200 messages does not copy the whole chat twice; a
    message with a picture still gets its cached copy and its full URL, as before."""
    from gradio import processing_utils
    from PIL import Image

    picture = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(picture)
    history = earlier_messages(4) + [cv.user_message("look", [str(picture)])]
    chatbot = remember_forms(gr.Chatbot())
    forms = chatbot.postprocess(history)
    moved = asyncio.run(processing_utils.async_move_files_to_cache(forms, chatbot, postprocess=True))
    rooted = processing_utils.add_root_url(moved, "http://root:1", None)
    assert [a is b for a, b in zip(forms, rooted)] == [True] * 4 + [False]
    assert rooted[:4] == gr.Chatbot().postprocess(history[:4]).model_dump()
    served = rooted[-1]["content"][0]["file"]
    assert served["path"] != str(picture) and served["url"] == "http://root:1/gradio_api/file=" + served["path"]
    # any other walk of gradio's (not one looking for files) still goes into every message
    from gradio_client import utils as client_utils

    texts = client_utils.traverse(forms, str.upper, lambda x: isinstance(x, str) and x.startswith("message"))
    assert texts[0]["content"][0]["text"].startswith("MESSAGE 0")


def test_a_fast_space_gets_at_most_twenty_updates_a_second_and_every_word() -> None:
    """1,000 chunks a second for 400 chunks: the chat gets about 20 updates a second (asserted with 2x room),
    the last update before the end holds the whole reply, and a long chat is answered as a short one is."""
    standin = start_standin(pace_ms=1, chunks=400)
    try:
        app = start_app("--space-url", standin.url, "--hub-url", standin.hub_url)
        try:
            async def main() -> tuple[list, dict[int, str]]:
                async with aiohttp.ClientSession() as session:
                    fn, inputs = await find_respond(session, app.url)
                    results = [await turn(session, app.url, fn, inputs, earlier_messages(n), f"pace{n}x", None,
                                          prompt="tell me a long story") for n in (0, 200)]
                config = BridgeConfig(space="microsoft/phi-4-multimodal", space_url=standin.url,
                                      hub_url=standin.hub_url)
                async with Phi4Bridge(config) as bridge:  # the whole reply, straight from the Space
                    whole = {n: await bridge.submit("tell me a long story", history=earlier_messages(n)).result()
                             for n in (0, 200)}
                return results, whole

            results, whole = asyncio.run(main())
            for result in results:
                assert result.error is None, result.error
                assert result.total_s is not None
                assert result.text_updates >= 2
                allowed = 2 * (result.total_s * 20 + 4)  # 20 a second, plus the notes and the end
                assert result.updates <= allowed, (result.updates, result.total_s)
                expected = whole[result.earlier]
                assert result.last_update_text == expected, (result.last_update_text[-80:], expected[-80:])
                # in the form gradio's Chatbot gives its messages (the chat step makes it: postprocess=False)
                [gradios] = gr.Chatbot().postprocess([cv.bot_message(expected)]).model_dump()
                assert result.chat[-1] == gradios, (result.chat[-1], gradios)
        finally:
            app.stop()
    finally:
        standin.stop()


def test_what_was_built_at_start_is_left_out_of_garbage_collection() -> None:
    """``freeze_startup_objects`` (called by ``serve`` once gradio has started): garbage collected first, the rest
    frozen, so later full collections do not walk gradio's start-up objects (the long-chat benchmark's figure)."""
    import gc
    import weakref

    from mirror.serve.launch import freeze_startup_objects

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    garbage = Cycle()
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gone() is None  # collected, not frozen
        assert gc.get_freeze_count() > before + 10_000  # gradio's modules and what this test process built
    finally:
        gc.unfreeze()


def test_the_frame_is_shared_by_the_replies_streaming_at_once() -> None:
    from mirror.chat.pacing import shared_frame

    assert shared_frame(0.05, 1, 200) == 0.05  # one visitor: their own 20 a second
    assert shared_frame(0.05, 10, 200) == 0.05  # ten: still 20 each (200 in all)
    assert shared_frame(0.05, 50, 200) == 0.25  # fifty: 4 a second each, 200 in all
    assert shared_frame(0.05, 50, 0) == 0.05  # no shared limit
    assert shared_frame(0.0, 50, 200) == 0.0  # an update per chunk stays that


def test_a_frame_asked_of_a_function_follows_it() -> None:
    """``batches`` asks a function for each frame's floor: when it grows, the lists come further apart."""
    floor = [0.0]

    async def main() -> list[int]:
        async def source() -> AsyncIterator[int]:
            for i in range(200):
                await asyncio.sleep(0.002)
                yield i

        sizes = []
        async for batch in batches(source(), lambda: floor[0]):
            sizes.append(len(batch))
            if len(sizes) == 20:
                floor[0] = 0.1  # from here, a list at most every 100 ms
        return sizes

    sizes = asyncio.run(asyncio.wait_for(main(), 10.0))
    assert sizes[:20] == [1] * 20  # every item alone while the floor was 0
    assert sum(sizes) == 200 and len(sizes) < 20 + 12  # the last 180 items, 2 ms apart, in lists 100 ms apart


def test_many_replies_at_once_share_the_apps_updates() -> None:
    """Four page turns at once with ``--ui-updates-total-per-s 8``: each gets about 2 updates a second (asserted
    with 2x room), where alone it would get 20; every word still arrives."""
    standin = start_standin(pace_ms=2, chunks=600)  # at least 1.2 s a turn
    try:
        app = start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--ui-updates-total-per-s", "8",
                        "--turns-per-client", "10")
        try:
            async def main() -> list:
                async with aiohttp.ClientSession() as session:
                    fn, inputs = await find_respond(session, app.url)
                    return list(await asyncio.gather(*(turn(session, app.url, fn, inputs, [], f"share{n}x", None,
                                                            prompt="tell me a long story") for n in range(4))))

            results = asyncio.run(main())
            for result in results:
                assert result.error is None, result.error
                assert result.total_s is not None and result.total_s > 1.0, result.total_s
                allowed = 2 * (result.total_s * 8 / 4 + 4)  # 8 a second shared by 4, plus the notes and the end
                assert result.updates <= allowed, (result.updates, result.total_s)
                assert result.last_update_text == results[0].last_update_text != ""
        finally:
            app.stop()
    finally:
        standin.stop()


def test_the_chat_api_is_paced_as_the_page_is_and_ends_with_the_whole_reply() -> None:
    """``/chat`` over gradio's queue (as gradio_client and the JS client call it), 1,000 chunks a second for 400
    chunks: about 20 updates a second (asserted with 2x room) where unpaced it sent one per chunk, and its last
    value is the whole reply."""
    from benchmarks import sweep

    standin = start_standin(pace_ms=1, chunks=400)
    try:
        app = start_app("--space-url", standin.url, "--hub-url", standin.hub_url)
        try:
            async def main() -> tuple[sweep.TurnResult, str]:
                async with aiohttp.ClientSession() as session:
                    target = await sweep.find_target(session, "app", app.url, "chat", "app")
                    result = await sweep.one_turn(session, target, "tell me a long story")
                config = BridgeConfig(space="microsoft/phi-4-multimodal", space_url=standin.url,
                                      hub_url=standin.hub_url)
                async with Phi4Bridge(config) as bridge:
                    whole = await bridge.submit("tell me a long story").result()
                return result, whole

            result, whole = asyncio.run(main())
            assert result.error is None, result.error
            assert result.text == whole != ""
            assert result.done_at is not None
            total_s = result.done_at - result.sent_at
            allowed = 2 * (total_s * 20 + 2)
            assert 2 <= len(result.receipts) <= allowed, (len(result.receipts), total_s)
        finally:
            app.stop()
    finally:
        standin.stop()
