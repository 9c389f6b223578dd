"""The Space's wire protocol: find the chat in ``/config`` (``discover``; ``space_config`` fetches it), run a step
directly (``/run/predict``) or through the queue (``queue/join``, then the event stream), cancel. Each function is
one request; ``Job`` strings them together in the order of the Space's own chain (``chain``).

Every route but ``/config`` lives under the ``api_prefix`` that ``/config`` names ("" on gradio 4, ``/gradio_api``
on 5 and 6): ``routes(cfg, chain)`` is that root. ``/config`` answering and a route then answering 404 is not a
missing Space but a protocol problem (``RouteMissing``); the job asks ``/config`` again to tell the two apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
from gradio_client.utils import ServerMessage

from ..chain import PROTOCOLS, Chain, Step, chain_problem, fallback_chain, find_chain
from ..config import BridgeConfig
from ..errors import ProtocolError, RouteMissing, SpaceUnavailable, StreamTimeout, UnavailableState, classify_status
from ..space_config import fetch_config
from .sse import SSEDecoder

log = logging.getLogger(__name__)
# the messages after which the Space sends nothing more for an event
LAST_MESSAGES = frozenset({ServerMessage.process_completed, ServerMessage.close_stream, ServerMessage.unexpected_error})


class QueueOnly(Exception):
    """``/run/predict`` refused a step that must go through the queue: the caller joins the queue instead."""


def routes(cfg: BridgeConfig, chain: Chain) -> str:
    """Where the Space serves its routes: its URL and ``/config``'s ``api_prefix``."""
    return f"{cfg.space_url}{chain.api_prefix}"


async def check(resp: aiohttp.ClientResponse, what: str, chain: Chain | None = None) -> str:
    """The answer's text, or the error its status (and text) means; with ``chain``, a route after ``/config``."""
    body = await resp.text()
    if resp.status == 404 and chain is not None:
        raise route_missing(what, resp.url.path, chain)
    if resp.status != 200:
        raise classify_status(resp.status, body, what)
    return body


def route_missing(what: str, path: str, chain: Chain) -> RouteMissing:
    return RouteMissing(f"{what} answered HTTP 404 at {path}, though its /config answered: a protocol problem "
                        f"(gradio {chain.version or '?'}, api_prefix {chain.api_prefix!r}, {chain.protocol}); the "
                        "Space may have changed its interface.", status=404)


async def discover(session: aiohttp.ClientSession, cfg: BridgeConfig) -> Chain:
    """The Space's chat chain from its ``/config``; the known client's fixed indices when it cannot be read."""
    config = await fetch_config(session, cfg.space_url)
    if not isinstance(config, Mapping) or not isinstance(config.get("dependencies"), list):
        log.warning("The Space's /config is not a gradio app's; using the known client's fn 10 and 11")
        return fallback_chain()
    problem = chain_problem(config)
    found = None if problem else find_chain(config)
    if found is None or found.protocol not in PROTOCOLS:
        raise ProtocolError(f"The bridge cannot drive this Space: {problem or 'no chat'}.")
    log.info("Chat read from the Space's /config (gradio %s, api_prefix %r, %s): %s; steps %s (streaming: %s), "
             "text into %s %d, options %s", found.version or "?", found.api_prefix, found.protocol, found.choice,
             [s.fn for s in found.steps], [s.fn for s in found.steps if s.generator] or "none",
             found.kind(found.textbox), found.textbox, sorted(found.options))
    return found


def _body(step: Step, trigger_id: int, data: list[Any], session_hash: str) -> dict[str, Any]:
    return {"data": data, "event_data": None, "fn_index": step.fn, "trigger_id": trigger_id,
            "session_hash": session_hash}


async def predict(session: aiohttp.ClientSession, cfg: BridgeConfig, chain: Chain, step: Step, data: list[Any],
                  session_hash: str, headers: Mapping[str, str]) -> list[Any]:
    """A ``queue: false`` step, as the page sends it: ``POST /run/predict``; its output data."""
    async with session.post(f"{routes(cfg, chain)}/run/predict", json=_body(step, chain.trigger_id, data, session_hash),
                            headers=dict(headers)) as resp:
        body = await resp.text()
        if resp.status == 404 and "join the queue" in body.lower():
            raise QueueOnly(body[:200])
        if resp.status == 404:
            raise route_missing("The Space", resp.url.path, chain)
        if resp.status != 200:
            raise classify_status(resp.status, body, "The Space")
    try:
        out = json.loads(body)["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"The Space's answer to a step has no data: {body[:80]!r}") from exc
    if not isinstance(out, list):
        raise ProtocolError(f"The Space's answer to a step has no data: {body[:80]!r}")
    return out


async def join(session: aiohttp.ClientSession, cfg: BridgeConfig, chain: Chain, step: Step, data: list[Any],
               session_hash: str, headers: Mapping[str, str]) -> str:
    """Queue a step; returns the event id."""
    async with session.post(f"{routes(cfg, chain)}/queue/join?__theme=light",
                            json=_body(step, chain.trigger_id, data, session_hash), headers=dict(headers)) as resp:
        body = await check(resp, "The Space's queue", chain)
    try:
        return str(json.loads(body)["event_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"The Space's queue answered without an event id: {body[:80]!r}") from exc


async def message_batches(session: aiohttp.ClientSession, cfg: BridgeConfig, chain: Chain, session_hash: str,
                          event_id: str, headers: Mapping[str, str]) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The stream's messages for ``event_id``, a batch per network read, with the first-event and idle
    timeouts applied. A batch holds more than one message only when the reader fell behind, so the caller can
    catch up in one step instead of one per message."""
    url = f"{routes(cfg, chain)}/queue/data?session_hash={session_hash}"
    hdrs = {**headers, "accept": "text/event-stream"}
    decoder = SSEDecoder()
    # The stream may legitimately last long: no total limit, only the first-event and idle timeouts below.
    no_total = aiohttp.ClientTimeout(total=None, connect=cfg.timeouts.connect, sock_connect=cfg.timeouts.connect)
    try:  # asyncio.timeout, not wait_for: on 3.11, wait_for loses a cancel (Stop, Ctrl-C) that meets the answer
        async with asyncio.timeout(cfg.timeouts.request):
            resp = await session.get(url, headers=hdrs, timeout=no_total)
    except TimeoutError as exc:
        raise StreamTimeout(f"The Space's event stream did not open within {cfg.timeouts.request:.0f} s (timed "
                            "out); it may be overloaded. Retry later.") from exc
    async with resp:
        if resp.status != 200:
            await check(resp, "The Space's event stream", chain)
        timeout, first = cfg.timeouts.first_event, True
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await resp.content.readany()
            except TimeoutError as exc:
                what = "to start answering" if first else "to send more of its reply"
                raise StreamTimeout(f"The Space took more than {timeout:.0f} s {what}; it may be overloaded. "
                                    "Try again later.") from exc
            except aiohttp.ClientError as exc:
                raise SpaceUnavailable(f"The connection to the Space broke mid-reply ({type(exc).__name__}); "
                                       "retry.", state=UnavailableState.DROPPED) from exc
            messages = decoder.feed(chunk) if chunk else decoder.close()
            if messages:
                first, timeout = False, cfg.timeouts.idle
            batch: list[dict[str, Any]] = []
            for message in messages:
                if message.get("event_id") not in (None, event_id):
                    continue
                batch.append(message)
                if message["msg"] in LAST_MESSAGES:
                    yield batch
                    return
            if batch:
                yield batch
            if not chunk:
                raise SpaceUnavailable("The Space closed the stream before the reply was complete; retry.",
                                       state=UnavailableState.DROPPED)


async def cancel(session: aiohttp.ClientSession, cfg: BridgeConfig, chain: Chain, fn: int, session_hash: str,
                 event_id: str, headers: Mapping[str, str]) -> None:
    """Ask the Space to stop a job, as gradio's own client does; best effort, it may already be done."""
    body = {"event_id": event_id, "session_hash": session_hash, "fn_index": fn}
    try:
        async with session.post(f"{routes(cfg, chain)}/cancel", json=body, headers=dict(headers),
                                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            await resp.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.info("Cancelling the job on the Space failed (%s)", type(exc).__name__)
