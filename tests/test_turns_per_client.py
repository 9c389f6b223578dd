"""One ``--turns-per-client`` count over every surface of the app (issue 26, item 3): the page's chat, ``/v1`` and
the MCP tools of one client (here: one address, no keys) share it, so a client cannot run its cap on each surface.

Against a real ``python app.py --standin --mcp --turns-per-client 2`` over loopback: a turn of the page's ``/chat``
(gradio's queue, the page's concurrency group and door; the UI's own chat step runs through the same
``ChatService.events``) and an MCP call hold the client's two turns on the Space, and then a third turn on each
surface is refused with the cap's sentence; once they end, the client may run again. The bug it catches: a count
per surface (or per runner), which would let the third turn through on any surface but the two busy ones.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from app_server import standin_of, start_app
from gradio_client import Client
from gradio_client.exceptions import AppError
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from polling import eventually

from phi4_standin.launcher import configure, reset, stats
from phi4_standin.process import ServerProcess

CAP = 2
BUSY = re.compile(r"You already have 2 turns (running|waiting or running)")


@pytest.fixture(scope="module")
def app() -> Iterator[ServerProcess]:
    with start_app("--standin", "--mcp", "--turns-per-client", str(CAP), "--standin-pace-ms", "5",
                   "--standin-chunks", "8", timeout=120) as server:
        yield server


@pytest.fixture
def space(app: ServerProcess) -> Iterator[str]:
    url = standin_of(app)
    reset(url)
    yield url
    reset(url)


async def page_turn(app: ServerProcess, text: str) -> str:
    """A turn of the page's ``/chat`` on gradio's queue (a ``gradio_client`` session, as a script drives the page):
    the reply, or the refusal's sentence."""
    def turn() -> str:
        try:
            return str(Client(app.url, verbose=False).predict({"text": text, "files": []}, api_name="/chat"))
        except AppError as exc:
            return f"refused: {exc}"
    return await asyncio.to_thread(turn)


async def mcp_call(app: ServerProcess, prompt: str) -> CallToolResult:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=120)) as http, \
            streamable_http_client(f"{app.url}/gradio_api/mcp/", http_client=http) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await session.call_tool("ask_phi4", {"prompt": prompt})


def text_of(result: CallToolResult) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def v1_turn(app: ServerProcess, text: str) -> str:
    client = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="no-keys-here", max_retries=0, timeout=60)
    reply = await client.chat.completions.create(model="phi-4-multimodal",
                                                 messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


async def test_the_page_v1_and_mcp_turns_of_one_client_share_one_cap(app: ServerProcess, space: str) -> None:
    configure(space, pace_ms=150, chunks=40)  # 6 s replies: both turns are still running when the others come
    page = asyncio.create_task(page_turn(app, "the page's turn"))
    tool = asyncio.create_task(mcp_call(app, "the tool's turn"))
    await eventually(lambda: stats(space)["active"] == 2, "the page's turn and the tool's both run on the Space", 20.0)

    with pytest.raises(openai.RateLimitError) as refused_v1:  # the cap: 429
        await v1_turn(app, "a third turn, by /v1")
    assert BUSY.search(str(refused_v1.value)), refused_v1.value
    refused_tool = await mcp_call(app, "a third turn, by MCP")
    assert refused_tool.isError and BUSY.search(text_of(refused_tool)), text_of(refused_tool)
    refused_page = await page_turn(app, "a third turn, by the page")
    assert refused_page.startswith("refused: ") and BUSY.search(refused_page), refused_page
    assert stats(space)["calls"] == 2, "a refused turn reached the Space"

    said, answered = await asyncio.gather(page, tool)
    assert said.startswith('You said: "the page\'s turn".'), said
    assert not answered.isError and text_of(answered).startswith('You said: "the tool\'s turn".'), text_of(answered)
    configure(space, pace_ms=5, chunks=8)
    assert (await v1_turn(app, "after them")).startswith('You said: "after them".')  # the count went back down
