"""A frame rate for a streamed reply: the events of a turn handed on in batches, at most one batch per interval.

Why: each update the chat step yields makes gradio postprocess, diff and send the whole chat on screen, so a
Space that streams 100 small chunks a second would make the app redo that 100 times a second, and the longer the
chat the more each time. No eye tells 20 updates a second from 100. Nothing waits for a batch to fill: an event
after a quiet interval goes out at once (so the first words are not held back); an urgent one (queue news, the
end, anything but text) goes out at once with what came before it, and the text after it is not held either;
held text goes out when its interval is up even if the Space then pauses. The source is read in a task of its
own, so a closed stream (Stop) cancels that task at once, and what the source holds (the Space's job) with it.

The interval is a floor: gradio's work for one update (its walks, diff and send of the whole chat) grows with the
chat on screen, and that work is timed (from a batch handed on to the next one asked for), so a frame lasts at least
``WORK_SHARE`` times it. At 200 earlier messages an update costs about twice what it does in a new chat, and the
frame rate drops from 20 to about 10 a second instead of the app's CPU per turn doubling; on a busy machine the
updates thin out too, where a fixed rate would add to the load.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")

# A frame lasts at least this many times the work its update cost (an update's work at most a tenth of the time)
WORK_SHARE = 10.0
# ... but never longer than this: the text still moves twice a second whatever a pause of the consumer cost
MAX_FRAME_S = 0.5

_END = object()
_CANCELLED = object()


async def _pump(source: AsyncIterator[T], queue: asyncio.Queue[object]) -> None:
    """Read ``source`` into ``queue``; its end or its exception goes in last."""
    try:
        async for item in source:
            await queue.put(item)
    except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it where the loop is
        queue.put_nowait(exc)
        return
    except BaseException:  # cancelled: by the reader (nobody reads on) or within the source (the reader must know)
        queue.put_nowait(_CANCELLED)
        raise
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
    queue.put_nowait(_END)


def shared_frame(own_s: float, streaming: int, total_per_s: float) -> float:
    """One reply's frame when ``streaming`` replies share ``total_per_s`` updates a second: never shorter than
    ``own_s`` (a visitor's own rate), longer once the replies streaming at once would together exceed the total.
    Why: each update is the app's work (gradio's queue, diff and send), so fifty visitors at 20 updates a second
    each asked more of two cores than the Space's own work and the first words of every new turn waited for CPU.
    0 for either rate: no limit from it."""
    if own_s <= 0:
        return 0.0
    if total_per_s <= 0:
        return own_s
    return max(own_s, streaming / total_per_s)


async def batches(source: AsyncIterator[T], interval: float | Callable[[], float],
                  urgent: Callable[[T], bool] = lambda _: False) -> AsyncGenerator[list[T], None]:
    """The items of ``source`` in lists, at most one list per ``interval`` seconds unless an item is ``urgent``.

    An exception of the source is raised here after the items that came before it were handed on. ``interval``
    0 hands on every item alone, as it comes (the source's own pace); otherwise a frame also lasts ``WORK_SHARE``
    times what the consumer spent on the last list, up to ``MAX_FRAME_S`` (the module's docstring says why).
    ``interval`` may be a function, asked at each frame (``shared_frame``: the frame grows with the load)."""
    loop = asyncio.get_running_loop()

    def floor() -> float:
        return interval() if callable(interval) else interval

    queue: asyncio.Queue[object] = asyncio.Queue()
    pump = asyncio.create_task(_pump(source, queue))
    # The source also ends with the task that reads this stream. gradio's cancel cancels an event's task, and one
    # that lands after a yield but before gradio keeps this generator leaves it suspended, unclosed until something
    # later drops it (tests/test_gradio_cancel_race.py): the pump would read the Space's whole reply meanwhile.
    reader = asyncio.current_task()

    def reader_done(_: object) -> None:
        if not pump.done():
            pump.cancel()

    if reader is not None:
        reader.add_done_callback(reader_done)
    held: list[T] = []
    last = -float("inf")  # when the last list went out
    frame = floor()  # the interval, or longer while the consumer's work on a list takes more than its share

    def spent_since(handed: float) -> float:
        """The next frame's length from the consumer's work on the list handed on at ``handed``."""
        base = floor()
        if base <= 0:
            return 0.0
        return max(base, min(MAX_FRAME_S, WORK_SHARE * (loop.time() - handed)))

    try:
        while True:
            if held:
                try:  # asyncio.timeout: on 3.11 wait_for can lose Stop's cancel when an item arrives with it
                    async with asyncio.timeout(max(0.0, last + frame - loop.time())):
                        item = await queue.get()
                except TimeoutError:  # the frame is due: show what has arrived
                    last = loop.time()
                    out, held = held, []
                    yield out
                    frame = spent_since(last)
                    continue
            else:
                item = await queue.get()
            if item is _CANCELLED:
                raise asyncio.CancelledError("the source was cancelled")
            if item is _END or isinstance(item, Exception):
                if held:
                    out, held = held, []
                    yield out
                if isinstance(item, Exception):
                    raise item
                return
            held.append(item)  # type: ignore[arg-type]
            now = loop.time()
            if urgent(item):  # type: ignore[arg-type]
                out, held = held, []
                yield out
                frame = spent_since(now)
                last = -float("inf")  # and the text after it (the first words after "answering") goes at once
            elif now - last >= frame:
                last = now
                out, held = held, []
                yield out
                frame = spent_since(now)
    finally:
        if reader is not None:
            reader.remove_done_callback(reader_done)
        if not pump.done():
            pump.cancel()
        await asyncio.wait({pump})  # the source's cleanup (the Space's job cancelled) is done when this ends
