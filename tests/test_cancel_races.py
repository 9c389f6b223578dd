"""A cancel (Stop, Ctrl-C, a closed page) that arrives in the same turn of the event loop as the data being
awaited still cancels.

Why: on Python 3.11 ``asyncio.wait_for`` returns the awaited result and drops the cancel when both are ready at
once (fixed in 3.12). Under load, one ``select`` often wakes the loop for a signal and a network read together:
``phi4_bridge qa`` then ignored Ctrl-C and went on waiting for a Space that was holding the turn (seen in a full
run of the suite). A server cannot place a cancel in the same loop turn as its bytes, so these tests play the
stream's read and the pacing's queue with futures they resolve themselves, in the same callback as the cancel.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from mirror.chat.pacing import batches
from phi4_bridge import BridgeConfig
from phi4_bridge._wire.protocol import message_batches


class HeldStream:
    """A response whose every read waits for a future the test resolves."""

    status = 200

    def __init__(self) -> None:
        self.reads: asyncio.Queue[asyncio.Future[bytes]] = asyncio.Queue()
        self.content = self

    async def readany(self) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.reads.put_nowait(fut)
        return await fut

    async def __aenter__(self) -> HeldStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class OneStreamSession:
    def __init__(self, stream: HeldStream) -> None:
        self.stream = stream

    async def get(self, url: str, **_: Any) -> HeldStream:
        return self.stream


async def test_a_cancel_with_a_chunk_of_the_stream_ends_the_read():
    stream = HeldStream()
    chain = SimpleNamespace(api_prefix="/gradio_api")
    cfg = BridgeConfig(space_url="http://127.0.0.1:9")

    async def read_all() -> None:
        async for _ in message_batches(OneStreamSession(stream), cfg, chain, "s", "e1", {}):  # type: ignore[arg-type]
            pass

    reader = asyncio.create_task(read_all())
    first = await asyncio.wait_for(stream.reads.get(), 5)
    first.set_result(b'data: {"msg": "estimation", "event_id": "e1", "rank": 0}\n\n')
    reader.cancel()  # the same loop turn as the chunk
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(reader, 5)  # wait_for here is the test's own bound, on a task that must end


async def test_a_cancel_with_an_item_of_a_paced_turn_ends_the_turn():
    items: asyncio.Queue[str] = asyncio.Queue()

    async def source():
        while True:
            yield await items.get()

    got: list[list[str]] = []

    async def consume() -> None:
        async for batch in batches(source(), 0.5):
            got.append(batch)

    consumer = asyncio.create_task(consume())
    items.put_nowait("a")  # goes out at once
    items.put_nowait("b")  # held for the frame
    for _ in range(50):
        await asyncio.sleep(0)
    assert got == [["a"]]
    # "c" wakes the source's reader; the cancel is queued behind it, so it lands in the loop turn where "c"
    # reaches the paced queue
    items.put_nowait("c")
    asyncio.get_running_loop().call_soon(consumer.cancel)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consumer, 5)
