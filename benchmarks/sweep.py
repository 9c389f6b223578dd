"""Many conversations at once, as many browsers would send them: gradio's own queue protocol over aiohttp.

Why not gradio_client here: 100 gradio_client ``Client``s mean 100 polling threads in the benchmark process,
which on a 2-core machine would measure the client, not the server. A browser's gradio JS client does what this
does: ``POST queue/join`` then one ``GET queue/data`` event stream, applying each ``process_generating`` diff.
The same client sweeps the Space directly (the reference at each concurrency) and the app; ``page_client``'s
conversations (the user step, the bot step and the steps after, as the Space's own page runs a turn) are the
second reference: what a visitor of the Space's page gets.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from gradio_client.utils import apply_diff

from .page_client import PageClient
from .paths import reply_text
from .stats import TurnResult

MAX_MESSAGES = 100_000  # per turn
TURN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Target:
    """Where a conversation's turns go: a dependency of a gradio app and how to shape its inputs."""

    name: str
    url: str
    fn_index: int
    trigger_id: int | None
    kind: str  # "space" (bot step: [history, extra]), "app" (/chat: [message, history]) or "page" (page_client)

    def data(self, prompt: str) -> list[Any]:
        if self.kind == "space":
            return [[{"role": "user", "content": prompt}], None]
        return [{"text": prompt, "files": []}, None]


async def find_target(session: aiohttp.ClientSession, name: str, url: str, api_name: str, kind: str) -> Target:
    """The fn index of ``api_name`` in the server's ``/config``."""
    async with session.get(f"{url}/config") as resp:
        config = await resp.json()
    for index, dep in enumerate(config.get("dependencies") or []):
        if dep.get("api_name") == api_name:
            targets = dep.get("targets") or []
            trigger = targets[0][0] if targets and isinstance(targets[0], list | tuple) else None
            return Target(name, url, int(dep.get("id", index)), trigger, kind)
    raise RuntimeError(f"{url} has no dependency named {api_name!r}")


async def one_turn(session: aiohttp.ClientSession, target: Target, prompt: str,
                   session_hash: str | None = None) -> TurnResult:
    """join + data stream for one turn; ``receipts`` record when the reply text grows.

    ``session_hash``: the conversation's gradio session. A browser keeps one per page for all its turns (and its
    page's load events open it before the first turn); a new one per turn makes the server set up a session on the
    way to every first text (gradio's ``SessionState`` copies the config of every block of the page)."""
    session_hash = session_hash or uuid.uuid4().hex[:11]
    result = TurnResult(target.name, prompt, time.time(),
                        remote_session=session_hash if target.kind == "space" else None)
    body = {"data": target.data(prompt), "event_data": None, "fn_index": target.fn_index,
            "trigger_id": target.trigger_id, "session_hash": session_hash}
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async with session.post(f"{target.url}/gradio_api/queue/join", json=body) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"join HTTP {resp.status}: {(await resp.text())[:120]}")
                event_id = (await resp.json())["event_id"]
            await _read(session, target, session_hash, event_id, result)
    except Exception as exc:  # noqa: BLE001 - counted as an error of this level
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    return result


async def _read(session: aiohttp.ClientSession, target: Target, session_hash: str, event_id: str,
                result: TurnResult) -> None:
    outputs: list[Any] | None = None
    url = f"{target.url}/gradio_api/queue/data?session_hash={session_hash}"
    async with session.get(url, headers={"accept": "text/event-stream"}) as resp:
        for _ in range(MAX_MESSAGES):
            line = await resp.content.readline()
            if not line:
                raise RuntimeError("stream ended before process_completed")
            if not line.startswith(b"data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (None, event_id):
                continue
            kind = message.get("msg")
            if kind == "process_generating":
                data = message["output"]["data"]
                outputs = list(data) if outputs is None else [apply_diff(v, d) for v, d in zip(outputs, data)]
                text = reply_text(outputs[0])
                if len(text) > result.chars:
                    result.receipts.append((time.time(), len(text)))
            elif kind == "process_completed":
                if not message.get("success", True):
                    output = message.get("output") or {}
                    raise RuntimeError(f"failed: {output.get('error') or output.get('title')}")
                text = reply_text((message.get("output") or {}).get("data", [""])[0])
                if len(text) > result.chars:
                    result.receipts.append((time.time(), len(text)))
                result.text = text
                result.done_at = time.time()
                return
    raise RuntimeError("too many stream messages")


async def conversations(target: Target, n: int, turns: int, tag: str) -> tuple[list[TurnResult], float]:
    """``n`` conversations started together, each ``turns`` turns in a row; returns results and wall time."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def conversation(c: int) -> list[TurnResult]:
            prompts = [f"{tag} c{c} t{t} {uuid.uuid4().hex[:6]}" for t in range(turns)]
            if target.kind == "page":
                client = PageClient(session, target.url)
                return [await page_turn(client, prompt) for prompt in prompts]
            page = uuid.uuid4().hex[:11]  # one session a conversation, as a browser page
            return [await one_turn(session, target, prompt, page) for prompt in prompts]

        started = time.monotonic()
        per_conv = await asyncio.gather(*(conversation(c) for c in range(n)))
        return [r for conv in per_conv for r in conv], time.monotonic() - started


async def page_turn(client: PageClient, prompt: str) -> TurnResult:
    """One turn of ``client``'s conversation (its ``/config`` read before the first, as a page loads it)."""
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            if client.config is None:
                await client.start()
            return await client.turn(prompt)
    except Exception as exc:  # noqa: BLE001 - counted as an error of this level
        return TurnResult("page", prompt, time.time(), error=f"{type(exc).__name__}: {exc}"[:200])
