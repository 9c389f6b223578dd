"""The stand-in Space with one benchmark-only addition: it remembers which prompt each remote session sent.

Why: the stand-in stamps every chunk per *remote* session hash, but the app's bridge picks its own session
hashes, which a client of the app never sees. The tap reads each ``queue/join`` body on its way in (the
bridge's, the known client's or gradio_client's alike), records ``prompt -> session_hash`` and serves it at
``GET /bench/sessions``; every benchmark prompt is unique, so each app turn finds its stamps (a remote session
holds all the turns of its conversation, so it is the prompt that names a turn). Nothing in
``phi4_bridge`` changes: this is ``phi4_standin``'s own ``build_app`` behind a thin ASGI wrapper.

    python -m benchmarks.standin_tap --port 7861 --pace-ms 5 --chunks 60 --gpus 128
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
MAX_TAPPED = 100_000  # prompts remembered (bounded memory)


def prompt_of(body: Any) -> str | None:
    """The text of the last user message in a ``queue/join`` body's first data element."""
    try:
        history = body["data"][0]
    except (KeyError, IndexError, TypeError):
        return None
    for message in reversed(history if isinstance(history, list) else []):
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return None


class Tap:
    """ASGI wrapper: tap ``/gradio_api/queue/join`` bodies, serve ``GET /bench/sessions``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.sessions: dict[str, str] = {}  # prompt -> the remote session that sent it

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/bench/sessions":
            body = json.dumps(self.sessions).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if path.endswith("/gradio_api/queue/join") and scope.get("method") == "POST":
            receive = await self._tapped(receive)
        await self.app(scope, receive, send)

    async def _tapped(self, receive: Any) -> Any:
        chunks: list[bytes] = []
        for _ in range(100_000):  # bounded: a join body is a few KB
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
            prompt, session = prompt_of(body), body.get("session_hash")
            if prompt is not None and isinstance(session, str) and len(self.sessions) < MAX_TAPPED:
                self.sessions[prompt] = session
        except (ValueError, AttributeError):
            pass
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        return replay


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from phi4_standin.cli import parse_args
    from phi4_standin.server import build_app

    settings = parse_args(argv)
    import uvicorn

    app, _, _ = build_app(settings)
    print(f"tapped stand-in Space on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
    uvicorn.run(Tap(app), host=settings.host, port=settings.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
