"""A faithful re-implementation of the known open-source provider's request sequence (as its own
documentation gives it), with aiohttp instead of its curl_cffi session. It is the contrast the mirror must beat.

What it does per call, as the provider does: a new HTTP session; a ZeroGPU token read from the Space's Hub page
when the conversation has none yet (a token per conversation, never refreshed); every file of the call uploaded
again (no memory of earlier uploads); ``run/predict`` fn 10 with ``[[], {"text", "files"}, null]``;
``queue/join`` fn 11 with ``[[text message], [file messages]]`` (the files as a second data element); then the
``queue/data`` stream read line by line, yielding the reply only at ``process_completed``.
"""

from __future__ import annotations

import json
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from .stats import TurnResult

MISSING_TOKEN = "[object Object]"
TOKEN_RE = re.compile(r"&quot;token&quot;:&quot;([^&]+?)&quot;")
UUID_RE = re.compile(r"&quot;sessionUuid&quot;:&quot;([^&]+?)&quot;")
MAX_LINES = 200_000  # bound on stream lines read per turn
STREAM_TIMEOUT_S = 120.0


@dataclass
class KnownConversation:
    """What the provider's ``JsonConversation`` carries between calls."""

    session_hash: str
    zerogpu_token: str = MISSING_TOKEN
    zerogpu_uuid: str | None = None


class KnownClient:
    """The provider's ``create_async_generator`` against one Space, reduced to a timed turn."""

    def __init__(self, space_url: str, hub_url: str, space: str = "microsoft/phi-4-multimodal") -> None:
        self.space_url, self.hub_url, self.space = space_url.rstrip("/"), hub_url.rstrip("/"), space
        self.token_fetches = 0

    async def _token(self, session: aiohttp.ClientSession) -> tuple[str | None, str]:
        self.token_fetches += 1
        async with session.get(f"{self.hub_url}/spaces/{self.space}") as resp:
            page = await resp.text()
        token, uid = TOKEN_RE.search(page), UUID_RE.search(page)
        return (uid.group(1) if uid else None), (token.group(1) if token else MISSING_TOKEN)

    def _headers(self, conv: KnownConversation) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-zerogpu-token": conv.zerogpu_token,
                   "referer": f"{self.space_url}?__theme=light"}
        if conv.zerogpu_uuid:
            headers["x-zerogpu-uuid"] = conv.zerogpu_uuid
        return headers

    async def turn(self, prompt: str, media: list[tuple[bytes, str]] | None = None,
                   conversation: KnownConversation | None = None) -> tuple[TurnResult, KnownConversation]:
        """One call: returns the timed turn and the conversation to pass to the next call."""
        conv = conversation or KnownConversation(session_hash=uuid.uuid4().hex)
        result = TurnResult("known_client", prompt, time.time(), remote_session=conv.session_hash)
        timeout = aiohttp.ClientTimeout(total=STREAM_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:  # a new session per call, as the provider
                if conversation is None:
                    conv.zerogpu_uuid, conv.zerogpu_token = await self._token(session)
                files = await self._upload(session, conv, media) if media else []
                await self._predict(session, conv, prompt, files)
                await self._join(session, conv, prompt, files)
                text = await self._read(session, conv)
            result.receipts.append((time.time(), len(text)))
            result.text = text
            result.done_at = result.receipts[-1][0]
        except Exception as exc:  # noqa: BLE001 - the provider maps every failure to one error; so do we
            result.error = f"{type(exc).__name__}: {exc}"[:200]
        return result, conv

    async def _upload(self, session: aiohttp.ClientSession, conv: KnownConversation,
                      media: list[tuple[bytes, str]]) -> list[dict[str, Any]]:
        form = aiohttp.FormData()
        for data, name in media:
            form.add_field("files", data, filename=name)
        async with session.post(f"{self.space_url}/gradio_api/upload", params={"upload_id": conv.session_hash},
                                data=form, headers={"x-zerogpu-token": conv.zerogpu_token}) as resp:
            resp.raise_for_status()
            paths = await resp.json()
        return [{"path": path, "url": f"{self.space_url}/gradio_api/file={path}", "orig_name": name,
                 "size": len(data), "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                 "meta": {"_type": "gradio.FileData"}} for path, (data, name) in zip(paths, media)]

    def _body(self, conv: KnownConversation, fn: int, data: list[Any]) -> dict[str, Any]:
        return {"data": data, "event_data": None, "fn_index": fn, "trigger_id": 8, "session_hash": conv.session_hash}

    async def _predict(self, session: aiohttp.ClientSession, conv: KnownConversation, prompt: str,
                       files: list[dict[str, Any]]) -> None:
        body = self._body(conv, 10, [[], {"text": prompt, "files": files}, None])
        async with session.post(f"{self.space_url}/gradio_api/run/predict", json=body,
                                headers=self._headers(conv)) as resp:
            resp.raise_for_status()
            await resp.read()

    async def _join(self, session: aiohttp.ClientSession, conv: KnownConversation, prompt: str,
                    files: list[dict[str, Any]]) -> None:
        data = [[{"role": "user", "content": prompt}], [{"role": "user", "content": {"file": f}} for f in files]]
        async with session.post(f"{self.space_url}/gradio_api/queue/join?__theme=light",
                                json=self._body(conv, 11, data), headers=self._headers(conv)) as resp:
            resp.raise_for_status()
            await resp.read()

    async def _read(self, session: aiohttp.ClientSession, conv: KnownConversation) -> str:
        headers = {**self._headers(conv), "accept": "text/event-stream"}
        async with session.get(f"{self.space_url}/gradio_api/queue/data",
                               params={"session_hash": conv.session_hash}, headers=headers) as resp:
            resp.raise_for_status()
            for _ in range(MAX_LINES):
                line = await resp.content.readline()
                if not line:
                    break
                if not line.startswith(b"data: "):
                    continue
                try:
                    message = json.loads(line[6:])
                except ValueError:
                    continue
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    if "error" in output and output["error"]:
                        raise RuntimeError(f"Response: {output['error']}")
                    return str(output["data"][0][-1]["content"])
        raise RuntimeError("stream ended without process_completed")
