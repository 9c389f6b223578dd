"""ASGI middleware: Space-wide faults, broken streams, and upload counting.

Why: some failures of a real Space happen below gradio (the Hub's proxy answers 503 for a sleeping Space,
404 for a missing one; a connection drops mid-stream; a proxy mangles an event), so they are acted out here,
around the whole app, rather than inside the Blocks.

* ``sleeping`` / ``not_found``: every Space route (``/``, ``/config``, ``/gradio_api/...``) answers 503 / 404
  (the Hub routes handle these faults themselves). With ``times`` N, the next N such requests are refused.
* ``drop_stream``: the next ``GET /gradio_api/queue/data`` stream ends (response closed) right after its
  ``drop_after``-th ``process_generating`` message (default 3), so no ``process_completed`` arrives.
* ``bad_event``: the next queue/data stream gets one malformed line ``data: {not json`` (as its own SSE
  message) just before its first ``process_generating``; the stream then continues normally to the end.
* ``/standin/*`` control routes are never affected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .space import Tunables
from .zerogpu import SPACE_FAULTS, STREAM_FAULTS, ZeroGPU

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BAD_EVENT = b"data: {not json\n\n"


def _is_space_path(path: str, hub_prefixes: tuple[str, ...]) -> bool:
    return not path.startswith("/standin/") and not path.startswith(hub_prefixes)


class StandinMiddleware:
    """Wraps the whole FastAPI app (gradio mount included); see module docstring."""

    def __init__(self, app: ASGIApp, zgpu: ZeroGPU, tunables: Tunables, hub_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.zgpu = zgpu
        self.tunables = tunables
        self.hub_prefixes = hub_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if _is_space_path(path, self.hub_prefixes):
            fault = self.zgpu.take_fault(SPACE_FAULTS)
            if fault is not None:
                await self._refuse(send, fault)
                return
        if path.endswith("/gradio_api/upload") and scope.get("method") == "POST":
            receive = self._counting_receive(receive)
        if path.endswith("/gradio_api/queue/data"):
            fault = self.zgpu.take_fault(STREAM_FAULTS)
            if fault is not None:
                send = self._faulty_send(send, fault)
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(send: Send, fault: str) -> None:
        status, text = (503, "This Space is sleeping") if fault == "sleeping" else (404, "Space not found")
        body = (f'{{"error": "{text}"}}').encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _counting_receive(self, receive: Receive) -> Receive:
        self.zgpu.bump("uploads")

        async def counted() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                self.zgpu.bump("upload_bytes", len(message.get("body", b"")))
            return message

        return counted

    def _faulty_send(self, send: Send, fault: str) -> Send:
        state = {"generating": 0, "closed": False, "injected": False}
        drop_after = max(int(self.tunables.drop_after), 1)

        async def faulty(message: Message) -> None:
            if state["closed"]:
                return
            if message.get("type") != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            count = body.count(b'"process_generating"')
            if fault == "bad_event" and count and not state["injected"]:
                state["injected"] = True
                await send({"type": "http.response.body", "body": BAD_EVENT, "more_body": True})
            await send(message)
            if fault == "drop_stream" and count:
                state["generating"] += count
                if state["generating"] >= drop_after:
                    state["closed"] = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

        return faulty
