"""The bridge against real gradio 6 servers of shapes it was not written with (``tests/chain_configs/record.py``):
gradio's own multimodal chatbot demo, whose user step is queued (once read as "the bot step", its reply came back
empty while the real bot step ran unseen), and a Space whose chain adds no reply at all."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_factory import png

from phi4_bridge import BridgeConfig, Phi4Bridge, ProtocolError, RemoteError, TextDelta
from phi4_standin.process import ServerProcess, free_port

RECORD = Path(__file__).parent / "chain_configs" / "record.py"


def serve(shape: str) -> ServerProcess:
    port = free_port()
    server = ServerProcess(f"gradio-{shape}", [sys.executable, str(RECORD), shape, "serve", str(port)], port)
    server.wait_ready("/config")
    return server


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    server = serve("multimodal")
    yield server
    server.stop()


def bridge_for(server: ServerProcess) -> Phi4Bridge:
    """No Hub here: its origin is a loopback port nobody listens on, so the turn goes without a ZeroGPU token."""
    return Phi4Bridge(BridgeConfig(space_url=server.url, hub_url=f"http://127.0.0.1:{free_port()}"))


async def test_the_demo_with_a_queued_user_step_streams_its_bot_steps_reply(demo, tmp_path) -> None:
    image = png(tmp_path / "red.png")
    async with bridge_for(demo) as bridge:
        conversation = bridge.conversation()
        async with bridge.submit("What is in this picture?", [image], conversation=conversation,
                                 options={"temperature": 0.2}) as job:
            texts = [e.text async for e in job if isinstance(e, TextDelta)]
        assert job.reply == "got 2 messages; temperature 0.2 " == "".join(texts)
        assert len(texts) > 1  # streamed from the bot step, not read at the end
        # the second turn sees the first: 2 messages, the reply, and this one
        assert await bridge.chat("And now?", conversation=conversation) == "got 4 messages; temperature 0.7 "


async def test_a_chain_that_adds_no_reply_is_a_failure_with_a_sentence() -> None:
    server = serve("silent")
    try:
        async with bridge_for(server) as bridge:
            conversation = bridge.conversation()
            with pytest.raises(RemoteError, match=r"^The Space ran its whole chat \(2 steps: fn 0, 1\) but added no "
                                                  r"reply text to its chatbot\. Retry;"):
                await bridge.chat("Hello?", conversation=conversation)
            assert conversation.history == []  # the failed turn is not kept: sending it again starts clean
    finally:
        server.stop()


async def test_a_route_missing_after_config_is_a_protocol_problem_not_a_missing_space(demo) -> None:
    async with bridge_for(demo) as bridge:
        chain = await bridge.chain()
        bridge._chain = dataclasses.replace(chain, api_prefix="/not_gradio_api")  # as a Space whose routes moved
        with pytest.raises(ProtocolError, match=r"^The Space's queue answered HTTP 404 at /not_gradio_api/queue/join, "
                                                r"though its /config answered: a protocol problem \(gradio 6"):
            await bridge.chat("Hello?")
