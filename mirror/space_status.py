"""Which Space answers, whether it can be reached, and the fallback to the offline stand-in.

At start ``SpaceStatus.start`` probes ``GET {space_url}/config`` (5 s). If that fails and fallback is on, it starts
the project's stand-in Space (``phi4_bridge.standin.launcher``) and points the bridge at it; a background thread
keeps probing the real Space (every ``--recheck-every`` seconds, 60 by default) and the UI offers a one-click
switch when it is back. The badge and banner texts are built here; they never contain a token.
"""

from __future__ import annotations

import html
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import replace

from .holder import BridgeHolder
from .settings import Settings

log = logging.getLogger(__name__)

SPACE_LABEL = "the Phi-4 Space"
STANDIN_LABEL = "the offline stand-in"


def probe(space_url: str, timeout: float = 5.0) -> bool:
    """True when ``GET {space_url}/config`` answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(f"{space_url}/config", timeout=timeout) as resp:  # noqa: S310
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class SpaceStatus:
    """What the app is talking to. ``mode``: ``space`` (the real one, reachable), ``unreachable`` (the real one,
    not answering), ``standin`` (asked for with ``--standin``) or ``fallback`` (stand-in because the Space was
    unreachable at start)."""

    def __init__(self, settings: Settings, holder: BridgeHolder) -> None:
        self.settings = settings
        self.holder = holder
        self.real = settings.bridge
        self.mode = "space"
        self.reachable = True  # of the origin the bridge uses now
        self.real_back = False  # fallback only: the real Space answers again
        self.standin = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings) -> SpaceStatus:
        holder = BridgeHolder(settings.bridge, SPACE_LABEL)
        status = cls(settings, holder)
        if settings.standin:
            status._use_standin("standin")
        elif probe(settings.bridge.space_url, settings.probe_timeout_s):
            status.mode = "space"
        elif settings.fallback:
            print(f"* The Space at {settings.bridge.space_url} cannot be reached; starting the offline stand-in. "
                  "Answers will NOT come from Phi-4.", flush=True)
            status._use_standin("fallback")
        else:
            print(f"* The Space at {settings.bridge.space_url} cannot be reached (--no-fallback): serving anyway; "
                  "turns fail until it is back.", flush=True)
            status.mode, status.reachable = "unreachable", False
        if status.mode != "standin":
            status._thread = threading.Thread(target=status._watch, name="space-watch", daemon=True)
            status._thread.start()
        return status

    def _use_standin(self, mode: str) -> None:
        from phi4_bridge.standin.launcher import start_standin

        self.standin = start_standin(pace_ms=self.settings.standin_pace_ms, chunks=self.settings.standin_chunks)
        config = replace(self.real, space_url=self.standin.url, hub_url=self.standin.hub_url)
        self.holder.switch(config, STANDIN_LABEL)
        self.mode, self.reachable = mode, True
        print(f"* Stand-in Space running at {self.standin.url}", flush=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.recheck_every_s):
            self.check_now()

    def check_now(self) -> None:
        """Probe the real Space (and the current origin, if different) once."""
        real_ok = probe(self.real.space_url, self.settings.probe_timeout_s)
        if self.mode == "fallback":
            self.real_back = real_ok
            self.reachable = self.standin is not None and probe(self.holder.config.space_url, 2.0)
        else:
            self.reachable = real_ok
            self.mode = "space" if real_ok else "unreachable"

    def switch_to_real(self) -> bool:
        """The one-click switch: new turns go to the real Space. False when it does not answer (again)."""
        if not probe(self.real.space_url, self.settings.probe_timeout_s):
            self.real_back = False
            return False
        self.holder.switch(self.real, SPACE_LABEL)
        self.mode, self.reachable, self.real_back = "space", True, False
        return True

    def stop(self) -> None:
        self._stop.set()
        if self.standin is not None:  # at most ~2 s: SIGTERM, then SIGKILL (the app must exit promptly)
            proc = self.standin.proc
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=2)
                except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
                    proc.kill()
            self.standin.stop()

    # --- texts for the page -----------------------------------------------------------------------------------

    def banner(self) -> str:
        """HTML for the can't-miss banner; empty when the real Space is in use and reachable."""
        url = html.escape(self.real.space_url)
        if self.mode == "fallback":
            back = (" <b>The real Space answers again: use the button below to switch.</b>" if self.real_back
                    else f" The app keeps checking {url} and offers a switch when it is back.")
            return ('<div class="mirror-banner mirror-banner-fallback" role="alert">⚠️ <b>Offline stand-in: answers '
                    f"do NOT come from Phi-4.</b> The Space at {url} could not be reached when the app started, so "
                    f"a local stand-in Space answers instead (it only describes what it received).{back}</div>")
        if self.mode == "standin":
            return ('<div class="mirror-banner mirror-banner-standin" role="status">🧪 <b>Stand-in mode: answers '
                    "come from the offline stand-in Space, not from Phi-4</b> (started with <code>--standin</code>)."
                    "</div>")
        if self.mode == "unreachable":
            return ('<div class="mirror-banner mirror-banner-fallback" role="alert">⛔ <b>The Phi-4 Space at '
                    f"{url} cannot be reached.</b> Turns will fail until it answers again; the app keeps checking."
                    "</div>")
        return ""

    async def badge(self) -> str:
        """One line: which Space, reachable or not, anonymous or signed in. Never a token."""
        cfg = self.holder.config
        if self.mode in ("standin", "fallback"):
            who = f"🧪 Stand-in Space at `{cfg.space_url}`"
        else:
            who = f"🛰️ Space `{cfg.space}` at `{cfg.space_url}`"
        reach = "🟢 reachable" if self.reachable else "🔴 unreachable"
        try:
            bridge = await self.holder.get()
            signed = await bridge.tokens.signed_in()
            source = bridge.tokens.source
        except Exception:  # noqa: BLE001 - the badge must never break the page
            log.warning("could not read the token state for the badge", exc_info=True)
            signed, source = False, "none"
        if signed:
            identity = "🔑 signed in (the host's HF token)"
        else:
            identity = "👤 anonymous (smallest ZeroGPU quota)"
        if source not in ("none", ""):
            identity += f" · token: {source.replace('_', ' ')}"
        return f"{who} · {reach} · {identity}"
