"""Tests of the stand-in Space's wire protocol, against a real stand-in subprocess over loopback (no mocks).

The known client's request sequence, files in the Gradio 5 history shape, streamed ``append`` diffs, the
``/config`` indices, and the pure ``reply`` module. The helpers here (``KnownClient``, ``one_turn``, ...) are
shared with test_standin_zerogpu.py (faults, tokens, quota, queue, cancel).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from media_factory import png as png_file
from media_factory import wav as make_wav
from PIL import Image

from phi4_standin import reply
from phi4_standin.launcher import stamps, stats
from phi4_standin.process import ServerProcess


@pytest.fixture(scope="session")
def standin(standin_classic):
    """This module checks the classic layout's wire shape."""
    return standin_classic

SPACE = "microsoft/phi-4-multimodal"



async def read_sse(resp: aiohttp.ClientResponse, raw: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``data: {json}`` lines until process_completed / close_stream / end of stream."""
    events: list[dict[str, Any]] = []
    async for line in resp.content:
        text = line.decode().rstrip("\r\n")
        if not text.startswith("data:"):
            continue
        if raw is not None:
            raw.append(text)
        payload = text[len("data:") :].strip()
        try:
            event = json.loads(payload)
        except json.JSONDecodeError:
            events.append({"msg": "<malformed>", "raw": payload})
            continue
        events.append(event)
        if event.get("msg") in ("process_completed", "close_stream"):
            break
    return events


class KnownClient:
    """The seed provider's request sequence, done with raw aiohttp."""

    def __init__(self, session: aiohttp.ClientSession, origin: str) -> None:
        self.s = session
        self.origin = origin
        self.session_hash = uuid.uuid4().hex[:11]
        self.headers: dict[str, str] = {"referer": f"{origin}?__theme=light"}

    async def fetch_token(self) -> None:
        async with self.s.get(f"{self.origin}/spaces/{SPACE}") as resp:
            assert resp.status == 200
            page = await resp.text()
        token = page.split("&quot;token&quot;:&quot;")[1].split("&")[0]
        session_uuid = page.split("&quot;sessionUuid&quot;:&quot;")[1].split("&")[0]
        self.headers.update({"x-zerogpu-token": token, "x-zerogpu-uuid": session_uuid})

    async def upload(self, path: Path, mime: str) -> dict[str, Any]:
        data = path.read_bytes()  # noqa: ASYNC240 - tiny test file
        form = aiohttp.FormData()
        form.add_field("files", data, filename=path.name, content_type=mime)
        url = f"{self.origin}/gradio_api/upload?upload_id={self.session_hash}"
        async with self.s.post(url, data=form, headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            (server_path,) = await resp.json()
        return {
            "path": server_path,
            "url": f"{self.origin}/gradio_api/file={server_path}",
            "orig_name": path.name,
            "size": len(data),
            "mime_type": mime,
            "meta": {"_type": "gradio.FileData"},
        }

    async def user_step(self, prompt: str, files: list[dict[str, Any]]) -> dict[str, Any]:
        body = {
            "data": [[], {"text": prompt, "files": files}, None],
            "event_data": None,
            "fn_index": 10,
            "trigger_id": 8,
            "session_hash": self.session_hash,
        }
        async with self.s.post(f"{self.origin}/gradio_api/run/predict", json=body, headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def bot_step(self, data: list[Any], raw: list[str] | None = None) -> list[dict[str, Any]]:
        body = {"data": data, "event_data": None, "fn_index": 11, "trigger_id": 8, "session_hash": self.session_hash}
        url = f"{self.origin}/gradio_api/queue/join?__theme=light"
        async with self.s.post(url, json=body, headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            assert "event_id" in await resp.json()
        url = f"{self.origin}/gradio_api/queue/data?session_hash={self.session_hash}"
        async with self.s.get(url, headers={**self.headers, "accept": "text/event-stream"}) as resp:
            assert resp.status == 200
            return await read_sse(resp, raw)


def completed(events: list[dict[str, Any]]) -> dict[str, Any]:
    done = [e for e in events if e.get("msg") == "process_completed"]
    assert done, f"no process_completed in {[e.get('msg') for e in events]}"
    return done[-1]


def last_content(event: dict[str, Any]) -> str:
    assert event["success"] is True, event
    return event["output"]["data"][0][-1]["content"]


async def test_known_client_sequence(standin_clean: ServerProcess, tmp_path: Path) -> None:
    png = png_file(tmp_path / "pic.png")
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, standin_clean.url)
        await client.fetch_token()
        file_data = await client.upload(png, "image/png")
        await client.user_step("What is in this picture?", [file_data])
        text_msg = {"role": "user", "content": "What is in this picture?"}
        file_msg = {"role": "user", "content": {"file": file_data}}
        events = await client.bot_step([[text_msg], [file_msg]])
    content = last_content(completed(events))
    assert 'You said: "What is in this picture?".' in content
    assert "Image 1: PNG, 37x23." in content
    assert "Earlier turns: 0." in content



def failed(events: list[dict[str, Any]]) -> tuple[str, str | None]:
    event = completed(events)
    assert event["success"] is False, event
    return event["output"]["error"], event["output"].get("title")


async def one_turn(origin: str, prompt: str = "hello", token: bool = True) -> list[dict[str, Any]]:
    """A text-only turn (token page, fn 10, fn 11) with the known client's request shapes."""
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, origin)
        if token:
            await client.fetch_token()
        await client.user_step(prompt, [])
        return await client.bot_step([[{"role": "user", "content": prompt}], []])


# ---- (b) files inside the history, earlier turns, audio ------------------------------------------------------
async def test_files_in_history_gradio5_shape(standin_clean: ServerProcess, tmp_path: Path) -> None:
    png = png_file(tmp_path / "a.png", 64, 48)
    wav = make_wav(tmp_path / "b.wav", 2.5)
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, standin_clean.url)
        await client.fetch_token()
        image = await client.upload(png, "image/png")
        audio = await client.upload(wav, "audio/wav")
        history = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok 1"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "ok 2"},
            {"role": "user", "content": {"file": image}},
            {"role": "user", "content": {"file": audio}},
            {"role": "user", "content": 'Describe "these"'},
        ]
        events = await client.bot_step([history, None])
    final = completed(events)
    content = last_content(final)
    assert 'You said: "Describe "these"".' in content
    assert "Image 1: PNG, 64x48." in content
    assert "Audio 1: 2.5 s." in content
    assert "Earlier turns: 2." in content
    messages = final["output"]["data"][0]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2 + ["user"] * 3 + ["assistant"]
    assert all(set(m) == {"role", "metadata", "content", "options"} for m in messages)
    file_content = messages[4]["content"]
    assert set(file_content) == {"file", "alt_text"} and file_content["alt_text"] is None
    assert file_content["file"]["meta"] == {"_type": "gradio.FileData"}
    numbers = stats(standin_clean.url)
    assert numbers["uploads"] == 2 and numbers["upload_bytes"] > png.stat().st_size + wav.stat().st_size
    assert numbers["calls"] == 1 and numbers["tokens_seen"] == 1 and numbers["token_page_fetches"] == 1


async def test_bare_filedata_content_is_rejected(standin_clean: ServerProcess, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, standin_clean.url)
        image = await client.upload(png_file(tmp_path / "a.png"), "image/png")
        events = await client.bot_step([[{"role": "user", "content": image}], None])
    assert completed(events)["success"] is False


# ---- (c) streaming with append operations --------------------------------------------------------------------
async def test_streaming_appends(standin_clean: ServerProcess) -> None:
    raw: list[str] = []
    async with aiohttp.ClientSession() as s:
        client = KnownClient(s, standin_clean.url)
        await client.fetch_token()
        events = await client.bot_step([[{"role": "user", "content": "stream please"}], []], raw)
    generating = [e for e in events if e["msg"] == "process_generating"]
    assert len(generating) == 8  # the fixture's --chunks
    first = generating[0]["output"]["data"][0]
    assert first[-1]["role"] == "assistant"
    text = first[-1]["content"]
    for event in generating[1:]:
        (ops,) = event["output"]["data"]
        assert len(ops) == 1 and ops[0][0] == "append" and ops[0][1] == [1, "content"]
        text += ops[0][2]
    assert text == last_content(completed(events))
    assert any('"append"' in line for line in raw)
    marks = stamps(standin_clean.url, client.session_hash)
    assert len(marks) == 8 and marks[-1][1] == len(text)
    assert [m[1] for m in marks] == sorted(m[1] for m in marks)


# ---- /config ---------------------------------------------------------------------------------------------------
def test_config_lines_up_with_known_client(standin: ServerProcess) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{standin.url}/config") as resp:
        config = json.loads(resp.read())
    types = {c["id"]: c["type"] for c in config["components"]}
    assert types[8] == "multimodaltextbox" and "chatbot" in types.values()
    user, bot = config["dependencies"][10], config["dependencies"][11]
    assert [8, "submit"] in user["targets"] and user["queue"] is False
    assert bot["trigger_after"] == 10 and bot["queue"] is True and bot["zerogpu"] is True
    assert types[bot["inputs"][0]] == "chatbot" and len(bot["inputs"]) == 2
    with urllib.request.urlopen(f"{standin.url}/gradio_api/info") as resp:
        assert resp.status == 200


# ---- (h) reply.py, pure ----------------------------------------------------------------------------------------
def test_parse_turn_counts_turns_and_takes_extra_files() -> None:
    history = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": {"file": {"path": "/x/1.png"}}},
        {"role": "user", "content": "c"},
    ]
    turn = reply.parse_turn(history, [{"role": "user", "content": {"file": {"path": "/x/2.wav"}}}])
    assert turn == reply.TurnInput(prompt="c", files=("/x/1.png", "/x/2.wav"), earlier_turns=1)
    assert reply.parse_turn([], None) == reply.TurnInput(prompt="", files=(), earlier_turns=0)
    gradio6 = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "file", "file": {"path": "/f"}}]}]
    assert reply.parse_turn(gradio6) == reply.TurnInput(prompt="hi", files=("/f",), earlier_turns=0)


def test_describe_file_kinds(tmp_path: Path) -> None:
    assert reply.describe_file(str(png_file(tmp_path / "p.png"))) == ("image", "PNG, 37x23")
    jpeg = tmp_path / "j.jpg"
    Image.new("RGB", (5, 9)).save(jpeg, format="JPEG")
    assert reply.describe_file(str(jpeg)) == ("image", "JPEG, 5x9")
    assert reply.describe_file(str(make_wav(tmp_path / "w.wav", 1.25, 16000))) == ("audio", "1.2 s")
    mp3 = tmp_path / "m.mp3"
    mp3.write_bytes(b"ID3\x04\x00" + b"\x00" * 64)
    assert reply.describe_file(str(mp3)) == ("audio", "MP3, duration unknown")
    other = tmp_path / "notes.txt"
    other.write_text("hello world!")
    assert reply.describe_file(str(other)) == ("file", "notes.txt, 12 bytes")


def test_build_reply_wording_and_padding(tmp_path: Path) -> None:
    png = str(png_file(tmp_path / "p.png"))
    wav = str(make_wav(tmp_path / "w.wav", 2.5))
    text = reply.build_reply(reply.TurnInput("hi", (png, wav), 2), chunks=1)
    assert text == 'You said: "hi". Image 1: PNG, 37x23. Audio 1: 2.5 s. Earlier turns: 2.'
    long = reply.build_reply(reply.TurnInput("hi"), chunks=40)
    assert long.startswith('You said: "hi". Earlier turns: 0. ' + reply.PAD_SENTENCE)
    assert len(long) >= 40 * reply.MIN_CHARS_PER_CHUNK
    assert reply.build_reply(reply.TurnInput("hi"), chunks=40) == long  # deterministic


@pytest.mark.parametrize(("text", "n"), [("abcdefghij", 3), ("abc", 5), ("x" * 100, 12), ("", 4)])
def test_split_chunks(text: str, n: int) -> None:
    parts = reply.split_chunks(text, n)
    assert "".join(parts) == text
    assert len(parts) == (min(n, len(text)) if text else 1)
    assert all(parts) or text == ""
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_the_standin_plays_the_space_the_bridge_calls_by_default() -> None:
    """The stand-in keeps its own copy of the Space id (it imports nothing of the bridge): the two must agree, or
    the app's fallback would answer as another Space than the one the bridge asks for."""
    from phi4_bridge.config import DEFAULT_SPACE
    from phi4_standin.server import SPACE_ID, StandinSettings

    assert SPACE_ID == DEFAULT_SPACE
    assert StandinSettings().space_id == DEFAULT_SPACE
