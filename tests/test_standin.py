"""Tests of the stand-in Space, against a real stand-in subprocess over loopback (no mocks)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from phi4_bridge.standin.launcher import StandinProcess

SPACE = "microsoft/phi-4-multimodal"


def make_png(path: Path, size: tuple[int, int] = (37, 23)) -> Path:
    Image.new("RGB", size, (200, 10, 10)).save(path, format="PNG")
    return path


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


async def test_known_client_sequence(standin_clean: StandinProcess, tmp_path: Path) -> None:
    png = make_png(tmp_path / "pic.png")
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
