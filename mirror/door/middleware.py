"""The app's door: an ASGI middleware that checks every request before gradio sees it, using the bookkeeping of
``guard.Guard``. What it checks is listed in ``guard``'s docstring; installed with
``launch(app_kwargs={"middleware": [Middleware(Door, guard=guard)]})``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from . import gradio_internals
from .guard import (
    BAD_SESSION,
    HEARTBEATS_PER_CLIENT,
    Guard,
    Receive,
    Scope,
    Send,
    address_of,
    release,
    upload_request_limit,
    valid_session_hash,
)

log = logging.getLogger(__name__)


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail, "error": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class ClientGone(Exception):
    """The client went away before its request body was complete (or was dropped for trickling it in:
    ``mirror.door.slow_clients``)."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than ``limit``; ``ClientGone`` when the client went away."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Door:
    """The ASGI middleware (see the module's docstring)."""

    def __init__(self, app: Callable[..., Awaitable[None]], guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        guard.start_sweeper()
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        query = scope.get("query_string", b"")
        if query:  # every session_hash, however spelled: gradio (starlette) reads ``session%5Fhash`` as one too
            hashes = parse_qs(query.decode("latin-1")).get("session_hash", [])
            if any(not valid_session_hash(h) for h in hashes):
                return await self._refuse(send, 400, BAD_SESSION, scope, "session hash in the query")
        api = path.split("/gradio_api/", 1)[1] if "/gradio_api/" in path else None

        if api is not None and api.startswith("heartbeat/"):
            return await self._heartbeat(scope, receive, send, api[len("heartbeat/"):])
        if method == "POST" and (path.rstrip("/").endswith("/login")):
            return await self._login(scope, receive, send)
        if api is None:
            await self.app(scope, receive, send)
            return
        if method == "POST" and api.rstrip("/") == "upload":
            return await self._upload(scope, receive, send)
        if method == "POST" and (api.rstrip("/") == "queue/join" or _chat_call(api)):
            return await self._join(scope, receive, send, api)
        if method == "POST" and _event_route(api):
            return await self._event(scope, receive, send, api)
        if method == "GET" and api.rstrip("/") == "queue/data":
            hashes = parse_qs(query.decode("latin-1")).get("session_hash", [])
            return await self._stream(scope, receive, send, hashes[0] if hashes else None)
        if method == "GET" and api.startswith("call/") and api.count("/") >= 2:
            return await self._stream(scope, receive, send, api.rstrip("/").rsplit("/", 1)[1])
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, status: int, detail: str, scope: Scope, what: str,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
        log.warning("refused %s %s from %s: %s (%s)", scope.get("method"), scope.get("path"), address_of(scope),
                    what, detail)
        await _answer(send, status, detail, headers)

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send, session_hash: str) -> None:
        if not valid_session_hash(session_hash.rstrip("/")):
            return await self._refuse(send, 400, BAD_SESSION, scope, "session hash in the heartbeat path")
        client = address_of(scope)
        beats = self.guard.heartbeats
        if beats.get(client, 0) >= HEARTBEATS_PER_CLIENT:
            return await self._refuse(send, 429, "Too many open pages from your address; close some and reload.",
                                      scope, "heartbeat cap")
        beats[client] = beats.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            release(beats, client)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = address_of(scope)
        throttle = self.guard.logins
        wait = throttle.locked_for(client)
        if wait > 0:
            seconds = max(1, round(wait))
            return await self._refuse(send, 429, f"Too many failed logins from your address; wait {seconds} s and "
                                      "try again. Until then every login from it is refused, even with the right "
                                      "password.", scope, "login lockout",
                                      [(b"retry-after", str(seconds).encode())])
        status: list[int] = []

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] in (200, 400, 401):
            throttle.record(client, ok=status[0] == 200)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.guard.max_upload_bytes
        limits, mb = self.guard.settings.bridge.limits, 1024 * 1024
        largest = upload_request_limit(limits)
        length = _content_length(scope)
        sentence = (f"That file is larger than {limit / mb:.0f} MB, the most this app accepts for one file "
                    f"(images at most {limits.max_image_bytes / mb:.0f} MB, audio at most "
                    f"{limits.max_audio_bytes / mb:.0f} MB).")
        over = self.guard.over_budget(scope)
        if over is not None:
            return await self._refuse(send, 429, over, scope, "upload over the turn budget")
        if length is not None and length > largest:
            return await self._refuse(send, 413, f"The upload is {length / mb:.0f} MB, larger than the "
                                      f"{largest / mb:.0f} MB one upload may carry (a turn's {limits.max_files} "
                                      f"files of up to {limits.max_image_bytes / mb:.0f} MB).", scope,
                                      f"upload of {length:,} bytes")
        rewrite: list[bool] = []

        async def reword(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 413:
                rewrite.append(True)
                body = sentence.encode()
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-length", b"content-type")]
                await send({**message, "headers": [*headers, (b"content-type", b"text/plain; charset=utf-8"),
                                                   (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                log.warning("refused an upload from %s: a file over %s bytes", address_of(scope), limit)
                return
            if rewrite:
                return  # gradio's own 413 body: replaced above
            await send(message)

        await self.app(scope, receive, reword)

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The request's body, at most ``guard.max_event_bytes``; None when it was refused (413: by its
        ``Content-Length`` unread, else as soon as more than that has arrived) or the client went away."""
        limit, mb = self.guard.max_event_bytes, 1024 * 1024
        why = (f"the most this app reads for one request is {limit / mb:.1f} MB, enough for a chat history "
               f"within its limits ({self.guard.settings.bridge.limits.max_history_chars:,} characters); files go "
               "through the upload.")
        length = _content_length(scope)
        if length is not None and length > limit:
            await self._refuse(send, 413, f"The request is {length / mb:.1f} MB; {why}", scope, "body too large")
            return None
        try:
            body = await _read_body(receive, limit)
        except ClientGone:
            log.info("a request from %s ended before its body was complete", address_of(scope))
            return None
        if body is None:
            await self._refuse(send, 413, f"The request is larger than {limit / mb:.1f} MB; {why}", scope,
                               "body too large")
        return body

    def _unknown_event(self, data: Any) -> str | None:
        """A sentence when ``data`` names an ``fn_index`` this app does not have (gradio would log a traceback)."""
        fns = gradio_internals.event_fn_indices(self.guard.blocks)
        if not isinstance(data, dict) or "fn_index" not in data or fns is None:
            return None
        index = data["fn_index"]
        if isinstance(index, int) and not isinstance(index, bool) and index in fns:
            return None
        return f"fn_index {str(index)[:20]!r} is not an event of this app; read /config for the events it has."

    async def _event(self, scope: Scope, receive: Receive, send: Send, api: str) -> None:
        """Any other event call (``/run/predict``, ``/call/...``, ``/reset``...): its body capped, its event known."""
        body = await self._body(scope, receive, send)
        if body is None:
            return
        if api.rstrip("/") == "run/predict" and b"fn_index" in body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            why = self._unknown_event(data)
            if why is not None:
                return await self._refuse(send, 404, why, scope, "unknown fn_index")
        await self.app(scope, _replay(body, receive), send)

    async def _join(self, scope: Scope, receive: Receive, send: Send, api: str) -> None:
        body = await self._body(scope, receive, send)
        if body is None:
            return
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = None  # gradio answers malformed JSON itself
        why = self._unknown_event(data)
        if why is not None:
            return await self._refuse(send, 404, why, scope, "unknown fn_index")
        if isinstance(data, dict):
            if "session_hash" in data and data["session_hash"] is not None \
                    and not valid_session_hash(data["session_hash"]):
                return await self._refuse(send, 400, BAD_SESSION, scope, "session hash in the join")
            if self._is_chat(api, data):
                inputs = data.get("data")
                message = inputs[0] if isinstance(inputs, list) and inputs else None
                why = self.guard.check_message(message)
                if why is not None:
                    return await self._refuse(send, 422, why, scope, "chat message")
            if data.get("fn_index") in self.guard.turn_fn_indices or _chat_call(api):
                client = self.guard.client_of_request(scope)
                turns = self.guard.turns
                # no await between the count and the reservation: concurrent joins cannot all slip through
                if not turns.join(client, self.guard.turns_of(client)):
                    return await self._refuse(send, 429, f"You already have {turns.cap} turns waiting or running "
                                              "(from this login or address); wait for one to finish.", scope,
                                              "turns per client")
                try:
                    await self.app(scope, _replay(body, receive), send)
                finally:
                    turns.joined(client)
                return
        await self.app(scope, _replay(body, receive), send)

    def _is_chat(self, api: str, data: dict[str, Any]) -> bool:
        if _chat_call(api):
            return True
        index = self.guard.chat_fn_index
        return index is not None and data.get("fn_index") == index

    async def _stream(self, scope: Scope, receive: Receive, send: Send, key: str | None) -> None:
        if not key:
            await self.app(scope, receive, send)
            return
        streams = self.guard.streams
        streams.opened(key)
        try:
            await self.app(scope, receive, send)
        finally:
            streams.closed(key)


EVENT_ROUTES = ("run/", "call/", "api/", "stream/", "reset", "cancel", "component_server")


def _event_route(api: str) -> bool:
    """gradio's routes that carry an event's data (capped at ``guard.max_event_bytes``); not ``/upload`` (file bytes,
    capped by ``_upload``), nor routes others mount under ``/gradio_api`` (an MCP server's messages)."""
    return api.startswith(EVENT_ROUTES)


def _chat_call(api: str) -> bool:
    """``call/chat``, ``call/v2/chat``, ``run/chat``, ``api/chat`` (POST)."""
    parts = api.rstrip("/").split("/")
    return len(parts) in (2, 3) and parts[0] in ("call", "run", "api") and parts[-1] == "chat" and (
        len(parts) == 2 or parts[1] == "v2")
