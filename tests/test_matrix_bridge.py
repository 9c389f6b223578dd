"""The bridge CLI and library against every shape of the matrix on every gradio generation it exists in
(``tests/gradio_matrix.py``), with no flag naming the shape: exact replies for text, an image, an audio file,
both, every option set, and a later turn that sees the earlier ones; every bot-step run's reply reaches the user.
The Space with no chat is refused with a sentence that says what is missing, never "not found".
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from forkserver import run_command
from gradio_matrix import RunsSince, no_hub
from matrix_replies import SETTABLE, cli_sets, expected
from media_factory import png, wav

from phi4_bridge import BridgeConfig, Phi4Bridge, Phi4Error, TextDelta

pytestmark = pytest.mark.matrix


def cli(space, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command([sys.executable, "-m", "phi4_bridge", "chat", *args, "--space-url", space.url,
                        "--hub-url", no_hub()], timeout=120)


def bridge_for(space) -> Phi4Bridge:
    return Phi4Bridge(BridgeConfig(space_url=space.url, hub_url=no_hub()))


def test_cli_an_image_an_audio_and_every_option(matrix_space, tmp_path):
    shape, runs = matrix_space.shape, RunsSince(matrix_space)
    options = SETTABLE[shape]
    done = cli(matrix_space, "What is in these?", "--image", str(png(tmp_path / "red.png")),
               "--audio", str(wav(tmp_path / "v.wav")), *cli_sets(options))
    reply = expected(shape, "What is in these?", image=True, audio=True, options=options)
    assert (done.returncode, done.stdout) == (0, reply + "\n"), done.stderr
    assert runs.replies() == [reply]


async def test_library_a_conversation_of_text_image_audio_and_both(matrix_space, tmp_path):
    shape, runs = matrix_space.shape, RunsSince(matrix_space)
    image, voice = png(tmp_path / "red.png"), wav(tmp_path / "v.wav")
    async with bridge_for(matrix_space) as bridge:
        conv = bridge.conversation()
        deltas: list[str] = []
        async with bridge.submit("Hello there", conversation=conv) as job:
            async for event in job:
                if isinstance(event, TextDelta):
                    deltas.append(event.text)
        replies = ["".join(deltas)]
        replies.append(await bridge.chat("What is this picture?", [image], conversation=conv))
        replies.append(await bridge.chat("Transcribe this", [voice], conversation=conv))
        replies.append(await bridge.chat("And both?", [image, voice], conversation=conv))
    assert replies == [expected(shape, "Hello there"),
                       expected(shape, "What is this picture?", image=True, earlier=1),
                       expected(shape, "Transcribe this", audio=True, earlier=2),
                       expected(shape, "And both?", image=True, audio=True, earlier=3)]
    if shape != "textstream":  # the others stream the chatbot in 3-4 pieces; it sets the chatbot once
        assert len(deltas) >= 2, deltas
    assert runs.replies() == replies


async def test_library_offers_the_spaces_options_and_each_reaches_its_step(matrix_space):
    shape, runs = matrix_space.shape, RunsSince(matrix_space)
    options = SETTABLE[shape]
    async with bridge_for(matrix_space) as bridge:
        offered = await bridge.options()
        assert set(options) <= set(offered), offered
        conv = bridge.conversation()
        first = await bridge.chat("Set them", options=options, conversation=conv)
        second = await bridge.chat("Defaults again", conversation=conv)
    assert [first, second] == [expected(shape, "Set them", options=options),
                               expected(shape, "Defaults again", earlier=1)]
    assert runs.replies() == [first, second]


def test_cli_says_what_a_space_without_a_chat_lacks(nochat_space):
    done = cli(nochat_space, "hello")
    assert done.returncode != 0 and done.stdout == ""
    said = done.stderr.strip().lower()  # log lines, then the failure's one line
    assert "not found" not in said and "chatbot" in said.splitlines()[-1], done.stderr


async def test_library_says_what_a_space_without_a_chat_lacks(nochat_space):
    async with bridge_for(nochat_space) as bridge:
        with pytest.raises(Phi4Error) as refused:
            await bridge.chat("hello")
    message = str(refused.value)
    assert "not found" not in message.lower() and "chatbot" in message.lower(), message


async def test_a_page_step_failing_after_the_reply_leaves_the_turn_whole(matrix_space, caplog):
    """The chains of gradio's multimodal demo (its last step queued) and of the official Space's port (unqueued)
    end with a step that only re-enables the textbox. When it fails on a real gradio 4, 5 or 6 server (the Space
    went to sleep or restarted just after the reply), the reply has come whole: the turn keeps it, the failure is
    logged, and the conversation goes on from it."""
    shape = matrix_space.shape
    if shape not in ("demo", "official"):
        pytest.skip("this shape's chain ends with its bot step")
    flag = Path(f"{matrix_space.runs_file}.fail-page-step")  # tests/gradio_spaces/spacekit.failing_after_reply
    async with bridge_for(matrix_space) as bridge:
        chain = await bridge.chain()
        last = len(chain.steps) - 1
        assert chain.page_only == {last}, chain.describe()
        conv = bridge.conversation()
        await asyncio.to_thread(flag.write_text, "fail")
        try:
            with caplog.at_level(logging.WARNING, logger="phi4_bridge.job"):
                reply = await bridge.chat("hello", conversation=conv)
        finally:
            await asyncio.to_thread(flag.unlink)
        assert reply == expected(shape, "hello")
        assert f"The Space's step fn {chain.steps[last].fn} after the reply failed" in caplog.text, caplog.text
        assert await bridge.chat("again", conversation=conv) == expected(shape, "again", earlier=1)
