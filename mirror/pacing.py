"""A frame rate for a streamed reply: the events of a turn handed on in batches, at most one batch per interval.

Why: each update the chat step yields makes gradio postprocess, diff and send the whole chat on screen, so a
Space that streams 100 small chunks a second would make the app redo that 100 times a second, and the longer the
chat the more each time. No eye tells 20 updates a second from 100. Nothing waits for a batch to fill: an event
after a quiet interval goes out at once (so the first words are not held back); an urgent one (queue news, the
end, anything but text) goes out at once with what came before it, and the text after it is not held either;
held text goes out when its interval is up even if the Space then pauses. The source is read in a task of its
own, so a closed stream (Stop) cancels that task at once, and what the source holds (the Space's job) with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")

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


async def batches(source: AsyncIterator[T], interval: float,
                  urgent: Callable[[T], bool] = lambda _: False) -> AsyncIterator[list[T]]:
    """The items of ``source`` in lists, at most one list per ``interval`` seconds unless an item is ``urgent``.

    An exception of the source is raised here after the items that came before it were handed on. ``interval``
    0 hands on every item alone, as it comes (the source's own pace)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    pump = asyncio.create_task(_pump(source, queue))
    held: list[T] = []
    last = -float("inf")  # when the last list went out
    try:
        while True:
            if held:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, last + interval - loop.time()))
                except TimeoutError:  # the frame is due: show what has arrived
                    last = loop.time()
                    out, held = held, []
                    yield out
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
                last = -float("inf")  # and the text after it (the first words after "answering") goes at once
                out, held = held, []
                yield out
            elif now - last >= interval:
                last = now
                out, held = held, []
                yield out
    finally:
        if not pump.done():
            pump.cancel()
        await asyncio.wait({pump})  # the source's cleanup (the Space's job cancelled) is done when this ends
