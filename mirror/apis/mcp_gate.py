"""The key check in front of the MCP address (``/gradio_api/mcp/...``), as ``/v1`` has it.

Why a middleware of its own: gradio mounts its MCP server outside its login, so neither ``--auth`` nor gradio
guards it. This gate answers every MCP request (the streamable HTTP transport, the SSE one, the schema, the landing
page) with 401 unless it carries ``Authorization: Bearer KEY`` with one of ``--api-key``; without keys the address is
open, except with ``--auth`` or ``--share``, when it refuses everyone (``phi4_bridge.openai_api.server.caller_of``
decides, for both surfaces). A key never reaches a log: the log line says why, not what was sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from phi4_bridge.openai_api.errors import ApiError
from phi4_bridge.openai_api.server import ApiSettings, caller_of

from ..door.guard import Receive, Scope, Send, address_of

log = logging.getLogger(__name__)


def is_mcp_path(path: str) -> bool:
    """``/gradio_api/mcp`` and everything under it (behind any root path)."""
    _, sep, rest = path.partition("/gradio_api/")
    return bool(sep) and (rest == "mcp" or rest.startswith("mcp/"))


class McpGate:
    """ASGI middleware: ``launch(app_kwargs={"middleware": [Middleware(McpGate, api=...)]})``."""

    def __init__(self, app: Callable[..., Awaitable[None]], api: ApiSettings) -> None:
        self.app, self.api = app, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_mcp_path(scope.get("path", "")):
            try:
                caller_of(Request(scope), self.api)
            except ApiError as exc:
                log.info("refused an MCP request from %s: %s", address_of(scope), exc.message)
                body = json.dumps({"error": exc.message}).encode()
                await send({"type": "http.response.start", "status": exc.status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", b'Bearer realm="phi4-mirror"')]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
