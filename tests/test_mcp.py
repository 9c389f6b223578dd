"""The MCP server (issue 25), driven with the official ``mcp`` SDK's own client (streamable HTTP) against a real
``python app.py --standin --mcp`` (its stand-in Space child found from the app's start-up line), over loopback.

What each test names is the bug it would catch: a tool missing or untyped, an image or a recording that never
reaches the Space, the address open without a key (or shut to a key behind a login), a failure that comes back as
a stack trace or a success, a call the budget does not count, a URL fetched when it should not be, a client that
leaves while the Space keeps working, a key in the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import pytest
from app_server import ROOT, standin_of, start_app
from gradio_client import Client
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from media_factory import png, wav
from PIL import Image
from polling import eventually

from phi4_standin.launcher import configure, reset, set_fault, stats
from phi4_standin.process import ServerProcess

# A key is a visitor with its own budget (--visitor-turns 3/hour below): each test calls with keys of its own.
NAMES = ("list", "image", "audio", "busy", "busy_v1", "quota", "quota_after", "budget", "budget_other", "urls",
         "leaver", "progress", "hog1", "hog2", "large", "log")
KEY = {name: f"mcp-key-{name}-{i:02d}7f3a9c" for i, name in enumerate(NAMES)}
KEYS = tuple(KEY.values())
MAIN = KEY["list"]
TOOLS = {"ask_phi4", "describe_image", "transcribe_audio"}


@pytest.fixture(scope="module")
def app() -> Iterator[ServerProcess]:
    args = ["--standin", "--mcp", "--standin-pace-ms", "5", "--standin-chunks", "8", "--visitor-turns", "3/hour"]
    for key in KEYS:
        args += ["--api-key", key]
    with start_app(*args, timeout=120) as server:
        yield server


@pytest.fixture
def space(app: ServerProcess) -> Iterator[str]:
    """The stand-in Space the app started (``--standin``), clean for each test."""
    url = standin_of(app)
    reset(url)
    configure(url, pace_ms=5, chunks=8, anon_quota_seconds=3600)
    yield url
    reset(url)


@asynccontextmanager
async def mcp_session(app: ServerProcess, key: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=120)) as http, \
            streamable_http_client(f"{app.url}/gradio_api/mcp/", http_client=http) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(app: ServerProcess, tool: str, arguments: dict, key: str) -> CallToolResult:
    async with mcp_session(app, key) as session:
        return await session.call_tool(tool, arguments)


def text_of(result: CallToolResult) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: the SDK raises from its task group."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def wait_for_line(app: ServerProcess, text: str, within: float = 30.0) -> None:
    """The start-up lines come right after gradio answers its first request: wait for them."""
    deadline = time.monotonic() + within
    while text not in app.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the app's output:\n{app.log_text()}")
        time.sleep(0.05)


# --- what an agent sees, and what reaches the Space --------------------------------------------------------------

async def test_the_start_up_lines_give_the_address_and_a_config_to_paste(app: ServerProcess) -> None:
    url = f"{app.url}/gradio_api/mcp/"
    wait_for_line(app, f"* MCP tools (ask_phi4, describe_image, transcribe_audio) at {url} (clients send "
                       "Authorization: Bearer KEY)")
    config = json.loads(app.log_text().split("* MCP client config: ", 1)[1].splitlines()[0])
    assert config == {"mcpServers": {"phi4-mirror": {"url": url, "headers": {
        "Authorization": "Bearer <your API key>"}}}}, "a placeholder, never a key"


async def test_the_tools_are_listed_typed_and_described(app: ServerProcess) -> None:
    async with mcp_session(app, MAIN) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS, "only the mirror's tools: not /chat, the QA tab's or the Space picker's endpoints"
    ask = tools["ask_phi4"].inputSchema
    assert ask["required"] == ["prompt"]
    assert ask["properties"]["prompt"]["type"] == "string"
    assert {"type": "array", "items": {"type": "string"}} in ask["properties"]["images"]["oneOf"]
    assert tools["describe_image"].inputSchema["required"] == ["image"]
    assert tools["transcribe_audio"].inputSchema["required"] == ["audio"]
    for tool in tools.values():
        assert "data:" in tool.description and "http(s) URL" in tool.description, tool.description
        assert "upload_file_to_gradio" not in tool.description, "no gradio file parameter (it would fetch any URL)"


async def test_an_image_as_a_data_url_reaches_the_space(app: ServerProcess, space: str, tmp_path: Path) -> None:
    """The issue's 'done when': the reply shows the image reached the Space."""
    image = data_url(png(tmp_path / "shot.png", 53, 29), "image/png")
    result = await call(app, "describe_image", {"image": image}, KEY["image"])
    assert not result.isError, text_of(result)
    assert text_of(result).startswith('You said: "Describe this image in detail.". Image 1: PNG, 53x29. '
                                      'Earlier turns: 0.'), text_of(result)
    result = await call(app, "ask_phi4", {"prompt": "Is it wide?", "images": [image]}, KEY["image"])
    assert not result.isError, text_of(result)
    assert text_of(result).startswith('You said: "Is it wide?". Image 1: PNG, 53x29.'), text_of(result)
    result = await call(app, "ask_phi4", {"prompt": "Which is wider?", "images": [image, data_url(
        png(tmp_path / "b.png", 20, 40), "image/png")]}, KEY["image"])
    assert result.isError, "the official Space takes one image a turn: its own refusal is the tool's error"
    assert text_of(result) == "The Space says: Please upload only one image file."


async def test_a_large_screenshot_of_several_mb_reaches_the_space(app: ServerProcess, space: str,
                                                               tmp_path: Path) -> None:
    """Beyond the MCP SDK's own 4 MiB request limit: a 1400x1400 PNG of noise (about 6 MB, 8 MB as a data: URL)."""
    shot = tmp_path / "big.png"
    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save(shot)
    image = data_url(shot, "image/png")
    assert len(image) > 6 * 1024 * 1024
    result = await call(app, "describe_image", {"image": image}, KEY["large"])
    assert not result.isError, text_of(result)
    assert "Image 1: PNG, 1400x1400." in text_of(result)


async def test_a_recording_as_a_data_url_reaches_the_space(app: ServerProcess, space: str, tmp_path: Path) -> None:
    clip = data_url(wav(tmp_path / "v.wav", 1.5), "audio/wav")
    result = await call(app, "transcribe_audio", {"audio": clip}, KEY["audio"])
    assert not result.isError, text_of(result)
    assert text_of(result).startswith('You said: "Transcribe this audio clip word for word.". Audio 1: 1.5 s.')


async def test_the_tools_answer_while_the_other_surfaces_are_busy(app: ServerProcess, space: str,
                                                                 tmp_path: Path) -> None:
    """The page's /chat and /v1 run turns at the same time as the tool call: each gets its own answer."""
    configure(space, pace_ms=40, chunks=12)
    image = data_url(png(tmp_path / "shot.png", 53, 29), "image/png")
    v1 = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key=KEY["busy_v1"], max_retries=0, timeout=60)
    page = Client(app.url, verbose=False)
    chat = asyncio.to_thread(page.predict, {"text": "from the page", "files": []}, api_name="/chat")
    api = v1.chat.completions.create(model="phi-4-multimodal", messages=[{"role": "user", "content": "from v1"}])
    tool, answered, completion = await asyncio.gather(
        call(app, "describe_image", {"image": image}, KEY["busy"]), chat, api)
    assert "Image 1: PNG, 53x29." in text_of(tool) and not tool.isError
    assert answered.startswith('You said: "from the page".')
    assert (completion.choices[0].message.content or "").startswith('You said: "from v1".')


async def test_a_call_that_waits_for_a_gpu_reports_its_progress(app: ServerProcess, space: str) -> None:
    """The stand-in has two GPUs: two long calls take them, a third waits in the Space's queue and says so."""
    configure(space, pace_ms=100, chunks=20)  # 2 s replies
    hogs = [asyncio.create_task(call(app, "ask_phi4", {"prompt": f"hog {n}"}, KEY[f"hog{n}"])) for n in (1, 2)]
    await eventually(lambda: stats(space)["active"] == 2, "both GPUs are busy", 10.0)
    notes: list[str] = []

    async def progress(step: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    async with mcp_session(app, KEY["progress"]) as session:
        result = await session.call_tool("ask_phi4", {"prompt": "my turn"}, progress_callback=progress)
    assert not result.isError and text_of(result).startswith('You said: "my turn".'), text_of(result)
    assert any(re.fullmatch(r"In the Space's queue: position \d+.*", note) for note in notes), notes
    assert notes[-1] == "Phi-4 is answering", notes
    for hog in hogs:
        assert not (await hog).isError


# --- keys ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [None, "mcp-key-wrong-999"])
async def test_a_missing_or_wrong_key_is_refused(app: ServerProcess, space: str, key: str | None) -> None:
    with pytest.raises(BaseException) as caught:  # noqa: B017 - the SDK raises an exception group
        await call(app, "ask_phi4", {"prompt": "let me in"}, key=key)
    statuses = [leaf.response.status_code for leaf in leaves(caught.value) if isinstance(leaf, httpx.HTTPStatusError)]
    assert statuses == [401], leaves(caught.value)
    assert stats(space)["calls"] == 0, "nothing reached the Space"
    async with httpx.AsyncClient() as http:  # the schema and the landing page are behind the key too
        for path in ("schema", ""):
            answer = await http.get(f"{app.url}/gradio_api/mcp/{path}",
                                    headers={"Authorization": f"Bearer {key}"} if key else {})
            assert answer.status_code == 401, path
            assert "key" in answer.json()["error"].lower()


# --- failures, budget, URLs ---------------------------------------------------------------------------------------

async def test_a_spent_quota_is_a_tool_error_with_the_sentence(app: ServerProcess, space: str) -> None:
    set_fault(space, "quota", times=1)
    result = await call(app, "ask_phi4", {"prompt": "hello"}, KEY["quota"])
    assert result.isError
    assert text_of(result).startswith("Your ZeroGPU quota is used up."), text_of(result)
    assert "Traceback" not in text_of(result) and "\n" not in text_of(result), "one sentence, not a stack trace"
    again = await call(app, "ask_phi4", {"prompt": "hello again"}, key=KEY["quota_after"])
    assert not again.isError and text_of(again).startswith('You said: "hello again".'), "the next call is answered"


async def test_each_call_spends_one_turn_of_the_keys_budget(app: ServerProcess, space: str) -> None:
    """``--visitor-turns 3/hour``: a key is a visitor; the fourth call is refused with the budget's sentence and
    never reaches the Space; another key goes on."""
    for n in range(3):
        result = await call(app, "ask_phi4", {"prompt": f"turn {n}"}, key=KEY["budget"])
        assert not result.isError, text_of(result)
    calls = stats(space)["calls"]
    result = await call(app, "ask_phi4", {"prompt": "one too many"}, key=KEY["budget"])
    assert result.isError
    assert re.fullmatch(r"You have used your 3 turns per hour on this app; you can chat again at \d\d:\d\d UTC "
                        r"\(in (59|60) minutes\)\.", text_of(result)), text_of(result)
    assert stats(space)["calls"] == calls, "the refused call reached the Space"
    other = await call(app, "ask_phi4", {"prompt": "mine"}, key=KEY["budget_other"])
    assert not other.isError, "another key is another visitor"


async def test_urls_are_not_fetched_without_the_flag_and_bad_files_are_named(app: ServerProcess, space: str,
                                                                            tmp_path: Path) -> None:
    result = await call(app, "describe_image", {"image": "https://example.com/cat.png"}, KEY["urls"])
    assert result.isError
    assert text_of(result) == ("images[0]: this server does not fetch image URLs (its host can turn that on with "
                               "--fetch-image-urls); send the image as a data: URL.")
    result = await call(app, "transcribe_audio", {"audio": "data:audio/wav;base64,not base64!"}, KEY["urls"])
    assert result.isError and text_of(result) == "audio: the audio is not valid base64."
    not_an_image = data_url(wav(tmp_path / "v.wav", 1.0), "image/png")
    result = await call(app, "describe_image", {"image": not_an_image}, KEY["urls"])
    assert result.isError and "images[0]" in text_of(result), text_of(result)
    assert stats(space)["calls"] == 0


# --- leaving early, and secrets -----------------------------------------------------------------------------------

async def test_a_client_that_goes_away_cancels_the_space_job(app: ServerProcess, space: str) -> None:
    configure(space, pace_ms=150, chunks=60)  # a 9 s reply: long enough to leave in the middle
    before = stats(space)["cancelled"]
    waiting = asyncio.create_task(call(app, "ask_phi4", {"prompt": "a long story"}, key=KEY["leaver"]))
    await eventually(lambda: stats(space)["active"] == 1, "the job runs on the Space", 10.0)
    waiting.cancel()  # the agent gives up: its connection closes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await eventually(lambda: stats(space)["cancelled"] == before + 1, "the Space job is cancelled", 10.0)
    await eventually(lambda: stats(space)["active"] == 0, "nothing runs on the Space", 10.0)


async def test_no_key_in_the_log(app: ServerProcess, space: str) -> None:
    """Every call here carries a key (a wrong one, a failed turn, a refused URL), and so did every other test of
    this module that ran before, in whatever order: none is in the log, and the failures are logged by key number."""
    with pytest.raises(BaseException):  # noqa: B017 - the SDK raises an exception group (a 401)
        await call(app, "ask_phi4", {"prompt": "let me in"}, key="mcp-key-wrong-999")
    set_fault(space, "quota", times=1)
    assert (await call(app, "ask_phi4", {"prompt": "hello"}, KEY["log"])).isError
    assert (await call(app, "describe_image", {"image": "https://example.com/cat.png"}, KEY["log"])).isError
    log = app.log_text()
    assert "refused an MCP request from 127.0.0.1: Incorrect API key provided." in log
    assert "a turn failed: QuotaExceeded" in log, "the quota failure was logged"
    number = f"key:{NAMES.index('log') + 1}"  # the keys were given in NAMES' order
    assert f"MCP call of {number} refused: images[0]: this server does not fetch image URLs" in log, "by key number"
    for secret in (*KEYS, "mcp-key-wrong-999"):
        assert secret not in log
    assert "Processing request of type" not in log, "the mcp SDK's two lines a call are quiet"


# --- behind a login, with --fetch-image-urls ---------------------------------------------------------------------

def test_behind_a_login_the_address_needs_a_key_and_the_login_does_not_block_it(standin: ServerProcess,
                                                                               tmp_path: Path) -> None:
    image = data_url(png(tmp_path / "shot.png", 53, 29), "image/png")
    reset(standin.url)
    space = ("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback")
    with start_app(*space, "--mcp", "--auth", "ann:a-long-pass") as app:
        wait_for_line(app, "refuses every call: behind a login it needs --api-key KEY")
        with pytest.raises(BaseException) as caught:  # noqa: B017
            asyncio.run(call(app, "describe_image", {"image": image}, key=None))
        statuses = [e.response.status_code for e in leaves(caught.value) if isinstance(e, httpx.HTTPStatusError)]
        assert statuses == [401]
        answer = httpx.get(f"{app.url}/gradio_api/mcp/schema", timeout=10)
        assert answer.status_code == 401
        assert answer.json()["error"].startswith("This server answers only with an API key")
    with start_app(*space, "--mcp", "--auth", "ann:a-long-pass", "--api-key", MAIN, "--fetch-image-urls") as app:
        result = asyncio.run(call(app, "describe_image", {"image": image}, MAIN))
        assert not result.isError and "Image 1: PNG, 53x29." in text_of(result), "a key replaces the login"
        for url in (f"{app.url}/favicon.ico", "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/x.png"):
            result = asyncio.run(call(app, "ask_phi4", {"prompt": "see", "images": [image, url]}, MAIN))
            assert result.isError, url
            assert text_of(result).startswith("images[1]: not fetched: ") and "not a public address" in \
                text_of(result), text_of(result)


def test_without_the_mcp_package_the_flag_says_what_to_install() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['mcp'] = None; import app; "
                           "app.main(['--mcp', '--standin'])"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "python app.py: error: --mcp needs the mcp package, which is not installed: pip install 'phi4-mirror[mcp]' "
        "(or pip install -r requirements.txt)")
