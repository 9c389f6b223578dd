"""``python -m phi4_bridge serve --port N``: the OpenAI-compatible API alone, without the app's UI.

    python -m phi4_bridge serve --port 8000 --api-key KEY      # base URL http://127.0.0.1:8000/v1

Why a separate runner: without the app there is no ``ChatService``; ``BridgeRunner`` gives the same rules in
small (at most ``concurrency`` turns at once, the rest wait; at most ``per_client`` turns per key or address,
the next is refused with 429) on one bridge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..bridge import Phi4Bridge
from ..chain import Option
from ..config import BridgeConfig
from ..errors import InputRejected
from ..events import Event
from .server import ApiSettings, Caller, build_api

log = logging.getLogger(__name__)


class BridgeRunner:
    """Turns on one bridge (see the module docstring).

    Its count of turns per caller (``clients``) is this server's alone: ``phi4-bridge serve`` runs without the
    app. The app's ``/v1`` never uses this runner: its turns go through ``mirror.apis.openai_api.AppRunner`` into
    the app's chat service, and are counted with the page's and the MCP tools' in the app's one count of turns per
    client (``mirror.door.guard.Turns``)."""

    def __init__(self, bridge: Phi4Bridge, concurrency: int = 32, per_client: int = 4) -> None:
        self.bridge = bridge
        self.slots = asyncio.Semaphore(concurrency)
        self.per_client = per_client
        self.clients: dict[str, int] = {}

    async def options(self) -> Mapping[str, Option]:
        return await self.bridge.options()

    async def events(self, caller: Caller, prompt: str, files: list[str], history: list[dict[str, Any]],
                     options: dict[str, Any]) -> AsyncIterator[Event]:
        if self.clients.get(caller.name, 0) >= self.per_client:
            raise InputRejected(f"You already have {self.per_client} turns running (with this key or from this "
                                "address); wait for one to finish.", reason="busy")
        self.clients[caller.name] = self.clients.get(caller.name, 0) + 1
        try:
            async with self.slots:
                async with self.bridge.submit(prompt, files, history=history, ip_token=caller.ip_token,
                                              options=options) as job:
                    async for event in job:
                        yield event
        finally:
            left = self.clients.get(caller.name, 1) - 1
            if left > 0:
                self.clients[caller.name] = left
            else:
                self.clients.pop(caller.name, None)


async def serve_api(config: BridgeConfig, *, host: str = "127.0.0.1", port: int = 8000, keys: tuple[str, ...] = (),
                    fetch_image_urls: bool = False, concurrency: int = 32, per_client: int = 4) -> int:
    """Serve the API alone on ``host:port`` until the server stops (``python -m phi4_bridge serve``)."""
    import uvicorn
    from fastapi import FastAPI

    if not keys and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without an API key: anyone who reaches the port can use your quota", host)
    holder: dict[str, BridgeRunner] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with Phi4Bridge(config) as bridge:
            holder["runner"] = BridgeRunner(bridge, concurrency, per_client)
            yield

    class Late:
        """The runner exists only once the server's loop runs (the bridge's session belongs to it)."""

        async def options(self) -> Mapping[str, Option]:
            return await holder["runner"].options()

        def events(self, *a: Any) -> AsyncIterator[Event]:
            return holder["runner"].events(*a)

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/v1", build_api(Late(), ApiSettings(keys=keys, fetch_image_urls=fetch_image_urls,
                                                   limits=config.limits)))
    print(f"* OpenAI-compatible API at http://{host}:{port}/v1 (model phi-4-multimodal), answers from "
          f"{config.space}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    await server.serve()
    return 0
