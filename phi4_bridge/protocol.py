"""The Space's wire protocol for one turn: find the endpoints, call the user step, join the queue, read the
event stream, cancel. Each function is one request; ``Phi4Bridge`` strings them together.

Endpoints are read from ``/config`` (by component types, so it survives a reordering of the Space's Blocks)
with a fallback to the indices the known client hard-codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .config import BridgeConfig
from .errors import ProtocolError, SpaceUnavailable, StreamTimeout, classify_status
from .sse import SSEDecoder

log = logging.getLogger(__name__)

FALLBACK_USER_FN, FALLBACK_BOT_FN, FALLBACK_TRIGGER = 10, 11, 8


@dataclass(frozen=True)
class Endpoints:
    user_fn: int = FALLBACK_USER_FN
    bot_fn: int = FALLBACK_BOT_FN
    trigger_id: int = FALLBACK_TRIGGER
    bot_inputs: int = 1
    source: str = "fallback"  # "config" when read from the Space's /config


def find_endpoints(config: Mapping[str, Any]) -> Endpoints | None:
    """The user and bot steps in a gradio ``/config`` (4.x to 6.x): the dependency that the multimodal
    textbox's submit starts, and the one that runs after it with the chatbot as input."""
    components = config.get("components") or []
    deps = config.get("dependencies") or []
    types = {c.get("id"): c.get("type") for c in components if isinstance(c, Mapping)}
    boxes = [cid for cid, kind in types.items() if kind == "multimodaltextbox"]
    chatbots = {cid for cid, kind in types.items() if kind == "chatbot"}
    for index, dep in enumerate(deps):
        targets = [tuple(t) for t in dep.get("targets") or [] if isinstance(t, list | tuple) and len(t) == 2]
        box = next((t[0] for t in targets if t[0] in boxes and t[1] == "submit"), None)
        if box is None:
            continue
        user_id = dep.get("id", index)
        for bot_index, bot in enumerate(deps):
            if bot.get("trigger_after") == user_id and chatbots & set(bot.get("inputs") or []):
                return Endpoints(user_fn=int(user_id), bot_fn=int(bot.get("id", bot_index)), trigger_id=int(box),
                                 bot_inputs=len(bot.get("inputs") or [1]), source="config")
    return None


async def _check(resp: aiohttp.ClientResponse, what: str) -> str:
    body = await resp.text()
    if resp.status != 200:
        raise classify_status(resp.status, body, what)
    return body


async def discover(session: aiohttp.ClientSession, cfg: BridgeConfig) -> Endpoints:
    """Read the endpoints from ``/config``; a Space that is down raises, an unreadable config falls back."""
    async with session.get(f"{cfg.space_url}/config") as resp:
        body = await _check(resp, "The Space")
    try:
        found = find_endpoints(json.loads(body))
    except (ValueError, TypeError, AttributeError):
        found = None
    if found is None:
        log.warning("Could not find the chat steps in the Space's /config; using fn %d and %d",
                    FALLBACK_USER_FN, FALLBACK_BOT_FN)
        return Endpoints()
    log.info("Chat steps read from the Space's /config: user fn %d, bot fn %d", found.user_fn, found.bot_fn)
    return found


def _body(fn: int, trigger: int, data: list[Any], session_hash: str) -> dict[str, Any]:
    return {"data": data, "event_data": None, "fn_index": fn, "trigger_id": trigger, "session_hash": session_hash}


async def user_step(session: aiohttp.ClientSession, cfg: BridgeConfig, ep: Endpoints, text: str,
                    files: list[dict[str, Any]], session_hash: str, headers: Mapping[str, str]) -> None:
    """fn 10: the Space's own record of the user's message, as its page sends it (the bridge needs nothing
    back from it: the whole history travels with the bot step)."""
    data = [[], {"text": text, "files": files}, None]
    async with session.post(f"{cfg.space_url}/gradio_api/run/predict",
                            json=_body(ep.user_fn, ep.trigger_id, data, session_hash), headers=dict(headers)) as resp:
        await _check(resp, "The Space")


async def join(session: aiohttp.ClientSession, cfg: BridgeConfig, ep: Endpoints, history: list[dict[str, Any]],
               session_hash: str, headers: Mapping[str, str]) -> str:
    """fn 11: queue the bot step with the whole history (files inside it); returns the event id."""
    data: list[Any] = [history] + [None] * (ep.bot_inputs - 1)
    async with session.post(f"{cfg.space_url}/gradio_api/queue/join?__theme=light",
                            json=_body(ep.bot_fn, ep.trigger_id, data, session_hash), headers=dict(headers)) as resp:
        body = await _check(resp, "The Space's queue")
    try:
        return str(json.loads(body)["event_id"])
    except (ValueError, KeyError, TypeError):
        raise ProtocolError(f"The Space's queue answered without an event id: {body[:80]!r}") from None


async def events(session: aiohttp.ClientSession, cfg: BridgeConfig, session_hash: str, event_id: str,
                 headers: Mapping[str, str]) -> AsyncIterator[list[dict[str, Any]]]:
    """The stream's messages for ``event_id``, a batch per network read, with the first-event and idle
    timeouts applied. A batch holds more than one message only when the reader fell behind, so the caller can
    catch up in one step instead of one per message."""
    url = f"{cfg.space_url}/gradio_api/queue/data?session_hash={session_hash}"
    hdrs = {**headers, "accept": "text/event-stream"}
    decoder = SSEDecoder()
    # The stream may legitimately last long: no total limit, only the first-event and idle timeouts below.
    no_total = aiohttp.ClientTimeout(total=None, connect=cfg.timeouts.connect, sock_connect=cfg.timeouts.connect)
    try:
        resp = await asyncio.wait_for(session.get(url, headers=hdrs, timeout=no_total), cfg.timeouts.request)
    except asyncio.TimeoutError:
        raise StreamTimeout(f"The Space's event stream did not open within {cfg.timeouts.request:.0f} s (timed "
                            "out); it may be overloaded. Retry later.") from None
    async with resp:
        if resp.status != 200:
            await _check(resp, "The Space's event stream")
        timeout, first = cfg.timeouts.first_event, True
        while True:
            try:
                chunk = await asyncio.wait_for(resp.content.readany(), timeout)
            except asyncio.TimeoutError:
                what = "to start answering" if first else "to send more of its reply"
                raise StreamTimeout(f"The Space took more than {timeout:.0f} s {what}; it may be overloaded. "
                                    "Try again later.") from None
            except aiohttp.ClientError as exc:
                raise SpaceUnavailable(f"The connection to the Space broke mid-reply ({type(exc).__name__}); "
                                       "retry.", state="dropped") from None
            messages = decoder.feed(chunk) if chunk else decoder.close()
            if messages:
                first, timeout = False, cfg.timeouts.idle
            batch: list[dict[str, Any]] = []
            for message in messages:
                if message.get("event_id") not in (None, event_id):
                    continue
                batch.append(message)
                if message["msg"] in ("process_completed", "close_stream"):
                    yield batch
                    return
            if batch:
                yield batch
            if not chunk:
                raise SpaceUnavailable("The Space closed the stream before the reply was complete; retry.",
                                       state="dropped")


async def cancel(session: aiohttp.ClientSession, cfg: BridgeConfig, ep: Endpoints, session_hash: str,
                 event_id: str, headers: Mapping[str, str]) -> None:
    """Ask the Space to stop a job, as gradio's own client does; best effort, it may already be done."""
    body = {"event_id": event_id, "session_hash": session_hash, "fn_index": ep.bot_fn}
    try:
        async with session.post(f"{cfg.space_url}/gradio_api/cancel", json=body, headers=dict(headers),
                                timeout=aiohttp.ClientTimeout(total=5)) as resp:
            await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.info("Cancelling the job on the Space failed (%s)", type(exc).__name__)
