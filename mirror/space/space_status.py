"""Which Space answers, what the Hub says about it, and the fallbacks: another Phi-4 Space, then the stand-in.

At start ``SpaceStatus.start`` asks the Hub for the configured Space's live stage (``phi4_bridge.hub``: RUNNING,
RUNTIME_ERROR, SLEEPING, PAUSED, ...) and its origin (when only ``--space`` is given), then probes
``GET {space_url}/config`` (5 s; ``phi4_bridge.space_config``), whose answer the page's generation settings then
read (``config_of``) rather than asking again. When the Space is not running (or does not answer):

1. another Phi-4-multimodal Space that runs and that the bridge can drive (``spaces.list_candidates``; the official
   one first, then the configured short list, then the Hub search by likes), unless ``--no-fallback``;
2. the offline stand-in (``phi4_standin.launcher``), the last resort, unless ``--no-fallback``.

``--space auto`` starts from the official Space and takes the first usable candidate (``--no-fallback`` then only
rules out the stand-in). A background thread asks the Hub and probes again every ``--recheck-every`` seconds; the
page offers a one-click switch back when the configured Space runs again. Banner and badge say the stage in words
and name the Space in use, so nobody mistakes a duplicate for the official Space; they never contain a token.
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any

from phi4_bridge import hub, spaces
from phi4_bridge.config import AUTO, DEFAULT_SPACE, DEFAULT_SPACE_URL, BridgeConfig
from phi4_bridge.errors import Phi4Error, SpaceUnavailable
from phi4_bridge.space_config import fetch_config_sync
from phi4_standin.process import ServerProcess

from ..settings import AppSettings
from .holder import BridgeHolder

log = logging.getLogger(__name__)

SPACE_LABEL = "the Phi-4 Space"
STANDIN_LABEL = "the offline stand-in"


def probe(space_url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[bool, Any]:
    """Whether ``GET {space_url}/config`` answers 200 within ``timeout`` seconds (``space_config.fetch_config_sync``),
    and what it answered, parsed (None: not JSON, or no answer)."""
    try:
        return True, fetch_config_sync(space_url, timeout, headers)
    except Phi4Error:
        return False, None


def auth_headers(config: BridgeConfig, url: str) -> dict[str, str]:
    """The host's HF token for a request to ``url`` when it is the private Space's origin the Hub vouched for
    (``config.private_origin``); nothing for any other Space (``hub.space_auth``)."""
    if not config.private_origin:
        return {}
    from phi4_bridge.config import find_hf_token

    return hub.space_auth(config, url, config.hf_token or find_hf_token())


def worth_trying(state: hub.SpaceState | None, url_given: bool) -> bool:
    """Whether to probe the Space's origin: it runs or sleeps (opening wakes it), or the Hub could not say, or the
    Hub does not show it but an origin was given."""
    if state is None or state.problem in ("unreachable", "hub_error"):
        return True
    if state.problem is not None:
        return url_given
    return state.running or state.stage == "SLEEPING"


class Mode(StrEnum):
    """What the app is talking to (see ``SpaceStatus``)."""

    SPACE = "space"
    OTHER = "other"
    UNREACHABLE = "unreachable"
    DOWN = "down"
    STANDIN = "standin"
    FALLBACK = "fallback"


class SpaceStatus:
    """What the app is talking to. ``mode``: ``space`` (the configured one, answering), ``other`` (another Phi-4
    Space, because the configured one is not running or with ``--space auto``), ``unreachable`` (the configured one,
    not answering), ``down`` (the configured one, which the Hub reports as not running, with ``--no-fallback``),
    ``standin`` (asked for with ``--standin``) or ``fallback`` (the stand-in, as the last resort)."""

    def __init__(self, settings: AppSettings, holder: BridgeHolder) -> None:
        self.settings = settings
        self.holder = holder
        self.auto = settings.bridge.space == AUTO
        config = settings.bridge
        if self.auto:  # auto starts from the official Space
            config = replace(config, space=DEFAULT_SPACE, space_url=config.space_url if config.space_url_given
                             else DEFAULT_SPACE_URL)
        self.real = config
        self.mode = Mode.SPACE
        self.reachable = True  # of the origin the bridge uses now
        self.real_back = False  # fallback/other only: the configured Space runs and answers again
        self.hub_state: hub.SpaceState | None = None  # the Hub's word on the configured Space
        self.reason = ""  # why the app left the configured Space (a sentence), "" when it did not
        self.standin: ServerProcess | None = None  # the stand-in child, when the app started one
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._candidates: list[spaces.Candidate] | None = None  # the picker's list (--allow-space-switch)
        self._candidates_at = 0.0
        self._config_read: tuple[str, Mapping[str, Any]] | None = None  # (origin, /config) of the last probe
        # The watch thread's rechecks and the page's switches (gradio worker threads) change mode, reason and the
        # bridge together: one at a time, so a recheck cannot undo half of a switch.
        self._changing = threading.RLock()

    @classmethod
    def start(cls, settings: AppSettings) -> SpaceStatus:
        holder = BridgeHolder(settings.bridge, SPACE_LABEL)
        status = cls(settings, holder)
        holder.switch(status.real, SPACE_LABEL)
        if settings.standin:
            status._use_standin(Mode.STANDIN)
        else:
            status._choose()
        if status.mode != Mode.STANDIN:
            status._thread = threading.Thread(target=status._watch, name="space-watch", daemon=True)
            status._thread.start()
        return status

    # --- choosing ---------------------------------------------------------------------------------------------

    def _ask_hub(self) -> hub.SpaceState | None:
        try:
            state = asyncio.run(hub.space_state(self.real))
        except Exception:  # noqa: BLE001 - the Hub's word is a help, never a reason to stop
            log.warning("could not ask the Hub about %s", self.real.space, exc_info=True)
            return None
        self.hub_state = state
        if state.problem is None:
            real = self.real
            if not real.space_url_given:
                host = asyncio.run(hub.space_host(real))
                real = replace(real, space_url=host or real.space_url)
            # private and visible to the host's token: the token goes to its origin (the Hub's word), else never
            real = replace(real, private_origin=asyncio.run(hub.private_origin(real)))
            if real != self.real:
                self.real = real
                if self.mode in (Mode.SPACE, Mode.UNREACHABLE, Mode.DOWN):
                    self.holder.switch(self.real, SPACE_LABEL)
        return state

    def _real_answers(self) -> bool:
        state = self._ask_hub()
        if not worth_trying(state, self.real.space_url_given):
            return False
        url = self.real.space_url
        answered, config = probe(url, self.settings.probe_timeout_s, auth_headers(self.real, url))
        self._config_read = (url, config) if answered and isinstance(config, Mapping) else None
        return answered

    def config_of(self, url: str) -> Mapping[str, Any] | None:
        """The ``/config`` that the last probe of the configured Space read, when it was ``url``'s (the page's
        generation settings then need not ask it again); None when it was another origin's or none was read."""
        read = self._config_read
        return read[1] if read is not None and read[0] == url else None

    def _why_not(self) -> str:
        """Why the configured Space is not used, in words."""
        state = self.hub_state
        if state is not None and state.problem not in ("unreachable", "hub_error") and \
                not worth_trying(state, self.real.space_url_given):
            return state.sentence()
        return f"The Space at {self.real.space_url} cannot be reached."

    def _choose(self) -> None:
        settings = self.settings
        if self._real_answers():
            self.mode, self.reachable = Mode.SPACE, True
            print(f"* {spaces.describe_use(self.real)}", flush=True)
            return
        self.reason = self._why_not()
        if self.auto or settings.fallback:
            chosen = self._other_candidate()
            if chosen is not None:
                self._use_other(chosen)
                return
        if settings.fallback:
            print(f"* {self.reason} No other Phi-4-multimodal Space runs; starting the offline stand-in. Answers "
                  "will NOT come from Phi-4.", flush=True)
            self._use_standin(Mode.FALLBACK)
        else:
            self.mode, self.reachable = (Mode.UNREACHABLE if self._network_failure() else Mode.DOWN), False
            print(f"* {self.reason.rstrip('.')} (--no-fallback): serving anyway; turns fail until it is back.",
                  flush=True)

    def _network_failure(self) -> bool:
        state = self.hub_state
        return state is None or state.problem in ("unreachable", "hub_error") or \
            worth_trying(state, self.real.space_url_given)

    def _other_candidate(self) -> spaces.Candidate | None:
        try:
            found = asyncio.run(spaces.list_candidates(self.real))
        except SpaceUnavailable as exc:
            log.info("no other Space: %s", exc)
            return None
        except Exception:  # noqa: BLE001
            log.warning("could not list other Phi-4 Spaces", exc_info=True)
            return None
        return spaces.pick(found, exclude=(self.real.space,))

    def _use_other(self, chosen: spaces.Candidate) -> None:
        config = replace(self.real, space=chosen.id, space_url=str(chosen.host), space_url_given=True,
                         private_origin=str(chosen.host) if chosen.private is True else None)
        label = SPACE_LABEL if chosen.official else f"{chosen.id} (not the official Phi-4 Space)"
        self.holder.switch(config, label)
        self.mode, self.reachable = (Mode.SPACE if chosen.official else Mode.OTHER), True
        print(f"* {self.reason} {spaces.describe_use(config)}", flush=True)

    def _use_standin(self, mode: Mode) -> None:
        from phi4_standin.launcher import start_standin

        standin = self.standin = start_standin(pace_ms=self.settings.standin_pace_ms,
                                               chunks=self.settings.standin_chunks)
        config = replace(self.real, space_url=standin.url, hub_url=standin.hub_url, private_origin=None)
        self.holder.switch(config, STANDIN_LABEL)
        self.mode, self.reachable = mode, True
        print(f"* Stand-in Space running at {standin.url}", flush=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.recheck_every_s):
            try:
                self.check_now()
            except Exception:  # noqa: BLE001 - the watch must outlive any one failed check
                log.warning("recheck failed", exc_info=True)

    def check_now(self) -> None:
        """Ask the Hub and probe the configured Space (and the current origin, if different) once."""
        with self._changing:
            self._check()

    def _check(self) -> None:
        real_ok = self._real_answers()
        if self.mode in (Mode.FALLBACK, Mode.OTHER):
            self.real_back = real_ok
            now = self.holder.config
            self.reachable = probe(now.space_url, 2.0, auth_headers(now, now.space_url))[0]
        else:
            self.reachable = real_ok
            if real_ok:
                self.mode, self.reason = Mode.SPACE, ""
            else:
                self.reason = self._why_not()
                self.mode = Mode.UNREACHABLE if self._network_failure() else Mode.DOWN

    def switch_to_real(self) -> bool:
        """The one-click switch: new turns go to the configured Space. False when it does not answer (again)."""
        with self._changing:
            if not self._real_answers():
                self.real_back = False
                return False
            self.holder.switch(self.real, SPACE_LABEL)
            self.mode, self.reachable, self.real_back, self.reason = Mode.SPACE, True, False, ""
            return True

    # --- the Space picker (--allow-space-switch) ---------------------------------------------------------------

    def candidates(self, fresh: bool = False) -> list[spaces.Candidate]:
        """The Phi-4-multimodal Spaces the Hub lists (``spaces.list_candidates``), asked again when ``fresh`` or older
        than ``--recheck-every``; the last list (or none) when the Hub cannot be asked."""
        now = time.monotonic()
        if fresh or self._candidates is None or now - self._candidates_at > self.settings.recheck_every_s:
            try:
                self._candidates = asyncio.run(spaces.list_candidates(self.real))
                self._candidates_at = now
            except Exception as exc:  # noqa: BLE001 - the picker then shows what it had
                log.info("could not list the Phi-4 Spaces for the picker: %s", exc)
                self._candidates = self._candidates or []
        return self._candidates

    def choices(self, fresh: bool = False) -> list[tuple[str, str]]:
        """The picker's entries: ``(label, id)``, the label with the stage in words ("someone/x · is running")."""
        in_use = self.holder.config.space if self.mode not in (Mode.STANDIN, Mode.FALLBACK) else None
        out = []
        for c in self.candidates(fresh):
            tags = [word for word, yes in (("official", c.official), ("private", c.private is True)) if yes]
            label = c.id + (f" ({', '.join(tags)})" if tags else "") + f" · {c.state.words}"
            if c.state.running and not c.usable:
                label += f" · cannot be driven ({c.note or 'no origin'})"
            if c.id == in_use:
                label += " · in use"
            out.append((label, c.id))
        return out

    def switch_to(self, space: str) -> tuple[bool, str]:
        """Point the app at ``space``, one of the listed candidates that runs and drives; ``(done, sentence)``.
        Anything else (an id the Hub did not list, a Space that is not running) is refused, nothing changes."""
        with self._changing:
            return self._switch_to(space)

    def _switch_to(self, space: str) -> tuple[bool, str]:
        chosen = next((c for c in self.candidates(fresh=True) if c.id == space), None)
        if chosen is None:
            return False, f"{space} is not one of the Phi-4-multimodal Spaces the Hub lists; nothing changed."
        if not chosen.usable:
            why = (f"{space} runs but cannot be driven ({chosen.note or 'no origin'})" if chosen.state.running
                   else chosen.state.sentence().rstrip("."))
            return False, f"{why}; nothing changed."
        if space == self.real.space:
            if not self.switch_to_real():
                return False, f"{space} does not answer right now; nothing changed."
        else:
            self.reason = f"The host switched the app to {space} in the page."
            self._use_other(chosen)
            self.mode, self.real_back = Mode.OTHER, False
        return True, f"Switched: answers now come from {space}."

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
        """HTML for the can't-miss banner; empty when the configured Space is in use and answers."""
        url = html.escape(self.real.space_url)
        reason = html.escape(self.reason)
        if self.mode == Mode.FALLBACK:
            back = (" <b>The real Space answers again: use the button below to switch.</b>" if self.real_back
                    else f" The app keeps checking {url} and offers a switch when it is back.")
            return ('<div class="mirror-banner mirror-banner-fallback" role="alert">⚠️ <b>Offline stand-in: answers '
                    f"do NOT come from Phi-4.</b> {reason} No other Phi-4-multimodal Space could be used either, so "
                    f"a local stand-in Space answers instead (it only describes what it received).{back}</div>")
        if self.mode == Mode.OTHER:
            cfg = self.holder.config
            space, where = html.escape(cfg.space), html.escape(cfg.space_url)
            official = html.escape(self.real.space)
            back = (f" <b>{official} answers again: use the button below to switch.</b>" if self.real_back
                    else f" The app keeps checking {official} and offers a switch when it runs again.")
            what = ("the official Phi-4-multimodal Space" if cfg.space == DEFAULT_SPACE
                    else "another Phi-4-multimodal Space, run by its own owner")
            return ('<div class="mirror-banner mirror-banner-fallback" role="alert">⚠️ <b>Answers come from '
                    f"{space}, not from {official}.</b> {reason} {space} (at {where}) is {what}.{back}</div>")
        if self.mode == Mode.STANDIN:
            return ('<div class="mirror-banner mirror-banner-standin" role="status">🧪 <b>Stand-in mode: answers '
                    "come from the offline stand-in Space, not from Phi-4</b> (started with <code>--standin</code>)."
                    "</div>")
        if self.mode == Mode.DOWN:
            return ('<div class="mirror-banner mirror-banner-fallback" role="alert">⛔ <b>'
                    f"{reason}</b> Turns will fail until it runs again (--no-fallback keeps the app on it); the app "
                    "keeps checking.</div>")
        if self.mode == Mode.UNREACHABLE:
            return ('<div class="mirror-banner mirror-banner-fallback" role="alert">⛔ <b>The Phi-4 Space at '
                    f"{url} cannot be reached.</b> Turns will fail until it answers again; the app keeps checking."
                    "</div>")
        return ""

    def stage_words(self) -> str:
        """The Hub's word on the configured Space, for the badge ("" when the Hub could not be asked)."""
        state = self.hub_state
        if state is None or state.problem in ("unreachable", "hub_error"):
            return ""
        return f"{state.space} {state.words}"

    async def badge(self) -> str:
        """One line: which Space, reachable or not, anonymous or signed in. Never a token."""
        cfg = self.holder.config
        if self.mode in (Mode.STANDIN, Mode.FALLBACK):
            who = f"🧪 Stand-in Space at `{cfg.space_url}`"
        elif self.mode == Mode.OTHER:
            who = f"🛰️ Space `{cfg.space}` (not the official `{self.real.space}`) at `{cfg.space_url}`"
        elif cfg.space != DEFAULT_SPACE:  # configured so: still said, so nobody takes it for the official one
            who = f"🛰️ Space `{cfg.space}` (not the official `{DEFAULT_SPACE}`) at `{cfg.space_url}`"
        else:
            who = f"🛰️ Space `{cfg.space}` at `{cfg.space_url}`"
        if cfg.private_origin and hub.same_origin(cfg.space_url, cfg.private_origin) and \
                self.mode not in (Mode.STANDIN, Mode.FALLBACK):
            who += " · 🔒 private (the host's HF token is sent to it)"
        reach = "🟢 reachable" if self.reachable else "🔴 unreachable"
        if self.mode != Mode.STANDIN and self.stage_words():
            reach += f" · Hub: {self.stage_words()}"
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
