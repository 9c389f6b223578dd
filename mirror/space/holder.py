"""``BridgeHolder``: the app's one ``Phi4Bridge`` (one aiohttp session), made lazily inside gradio's event loop.

Interface for other tabs (e.g. the QA tab):

    bridge = await holder.get()   # the live Phi4Bridge; created on first use, inside the running loop
    holder.config                 # the BridgeConfig the bridge uses now (space, space_url, hub_url)
    holder.label                  # "the Phi-4 Space" or "the offline stand-in" (what answers now)

``switch(config)`` points the app at another origin (the fallback's "switch to the real Space"): turns already
running finish on the old bridge, new turns use the new one; old bridges are closed at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from phi4_bridge import BridgeConfig, Phi4Bridge

log = logging.getLogger(__name__)


class BridgeHolder:
    def __init__(self, config: BridgeConfig, label: str = "the Phi-4 Space") -> None:
        self.config = config
        self.label = label
        self._bridge: Phi4Bridge | None = None
        self._retired: list[Phi4Bridge] = []
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self) -> Phi4Bridge:
        """The live bridge, created on first use in the calling (gradio's) event loop."""
        if self._bridge is not None and self._bridge.config == self.config:
            return self._bridge
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._bridge is not None and self._bridge.config != self.config:
                self._retired.append(self._bridge)
                self._bridge = None
            if self._bridge is None:
                bridge = Phi4Bridge(self.config)
                await bridge.__aenter__()
                self._bridge, self._loop = bridge, asyncio.get_running_loop()
            return self._bridge

    def switch(self, config: BridgeConfig, label: str) -> None:
        """New turns go to ``config``; the next ``get()`` makes the new bridge."""
        self.config, self.label = config, label

    async def close(self) -> None:
        for bridge in [*self._retired, *([self._bridge] if self._bridge else [])]:
            try:
                await bridge.close()
            except Exception:  # noqa: BLE001 - shutting down; nothing left to tell
                log.debug("closing a bridge failed", exc_info=True)
        self._bridge, self._retired = None, []

    def close_from_other_thread(self, timeout: float = 5.0) -> None:
        """Close the bridge from the main thread at shutdown, in the loop that owns its session."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return
        fut: Future[None] = asyncio.run_coroutine_threadsafe(self.close(), loop)
        try:
            fut.result(timeout)
        except Exception:  # noqa: BLE001
            log.debug("bridge close at shutdown did not finish", exc_info=True)
