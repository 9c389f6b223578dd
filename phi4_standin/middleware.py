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
* ``bad_bytes``: the same, with a line whose bytes are not UTF-8 (``data: \\xff\\xfe...``). Framed as the
  response's own body, so HTTP stays valid and only the event stream's text is wrong, wherever the reader's
  network reads fall (a proxy inserting bytes breaks the chunked framing too, and which error shows first then
  depends on timing).
* A private Space: when the Hub catalogue's entry of the stand-in's own Space (``--space-id``) is ``private``,
  every Space route needs ``Authorization: Bearer <a token of its "allow" list>``: none answers 401, another
  404, as the Hub does (``hub.refusal``). Every Space-route request carrying an ``Authorization`` header is
  counted (``space_authorization`` in ``/standin/stats``; the value is never kept), so a test can check that a
  public Space never received the user's token.
* ``/standin/*`` control routes are never affected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .hub import Catalogue, refusal
from .space import Tunables
from .zerogpu import SPACE_FAULTS, STREAM_FAULTS, ZeroGPU

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BAD_EVENT = b"data: {not json\n\n"
BAD_BYTES = b"data: \xff\xfe not UTF-8 \xc3\n\n"
INJECTED = {"bad_event": BAD_EVENT, "bad_bytes": BAD_BYTES}


def _is_space_path(path: str, hub_prefixes: tuple[str, ...]) -> bool:
    return not path.startswith("/standin/") and not path.startswith(hub_prefixes)


class StandinMiddleware:
    """Wraps the whole FastAPI app (gradio mount included); see module docstring."""

    def __init__(self, app: ASGIApp, zgpu: ZeroGPU, tunables: Tunables, hub_prefixes: tuple[str, ...],
                 catalogue: Catalogue | None = None, space_id: str = "") -> None:
        self.app = app
        self.zgpu = zgpu
        self.tunables = tunables
        self.hub_prefixes = hub_prefixes
        self.catalogue = catalogue
        self.space_id = space_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if _is_space_path(path, self.hub_prefixes):
            authorization = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                                  if k.lower() == b"authorization"), None)
            if authorization is not None:
                self.zgpu.bump("space_authorization")
            own = self.catalogue.get(self.space_id) if self.catalogue is not None else None
            refused = refusal(own, authorization or "") if own is not None else None
            if refused is not None:
                await self._send_json(send, refused[0], refused[1])
                return
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
        await StandinMiddleware._send_json(send, status, text)

    @staticmethod
    async def _send_json(send: Send, status: int, text: str) -> None:
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
            if fault in INJECTED and count and not state["injected"]:
                state["injected"] = True
                await send({"type": "http.response.body", "body": INJECTED[fault], "more_body": True})
            await send(message)
            if fault == "drop_stream" and count:
                state["generating"] += count
                if state["generating"] >= drop_after:
                    state["closed"] = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

        return faulty
