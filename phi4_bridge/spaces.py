"""Which Space answers: the other Phi-4-multimodal Spaces (the candidates), ranked and checked, ``--space auto``'s
pick, and ``resolve``, what the CLI runs before a turn. What the Hub says about each Space is ``hub``'s, whether the
bridge can drive one is read from its ``/config`` (``space_config``).

- ``list_candidates(config)``: the configured short list (official first) plus the Hub search, most liked first,
  each with its stage, hardware, gradio version, likes and whether the bridge can drive it (``drivable``: its
  ``/config`` has a chat chain that ``chain.find_chain`` finds).
- ``pick(candidates)``: the first usable one; ``none_usable`` says why there is none, Space by Space.
- ``resolve(config)``: ``--space auto`` picks the first RUNNING candidate the bridge can drive (the official one
  preferred), a Space given by id alone gets its origin from the Hub, and a Space the Hub reports as not running
  fails with the stage in words (``SpaceUnavailable``). A private Space the user's token can see gets its origin
  as ``private_origin`` (``hub.private_origin``), the only origin the token is sent to.
- ``describe_use(config)``: the line naming the Space in use, so nobody mistakes a duplicate for the official one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from .chain import chain_problem
from .config import AUTO, CANDIDATE_SEARCH, DEFAULT_SPACE, BridgeConfig
from .errors import Phi4Error, SpaceUnavailable, UnavailableState
from .hub import (
    SpaceState,
    hf_token,
    info_fields,
    private_origin,
    problem_state,
    search_spaces,
    space_host,
    space_info,
    space_state,
    state_from_runtime,
)
from .space_config import fetch_config

log = logging.getLogger(__name__)

CONFIG_TIMEOUT_S = 8.0
STATE_OF_STAGE = {"SLEEPING": UnavailableState.SLEEPING, "PAUSED": UnavailableState.PAUSED,
                  "BUILDING": UnavailableState.BUILDING, "APP_STARTING": UnavailableState.BUILDING}


@dataclass(frozen=True)
class Candidate:
    """A Phi-4-multimodal Space the app or the CLI could use instead of (or as) the configured one."""

    id: str
    state: SpaceState
    host: str | None = None
    sdk: str | None = None
    sdk_version: str | None = None
    likes: int | None = None
    private: bool | None = None
    listed: bool = False  # in the configured short list (else found by the Hub search)
    drivable: bool | None = None  # None: not checked (not running, or no origin)
    note: str = ""

    @property
    def official(self) -> bool:
        return self.id == DEFAULT_SPACE

    @property
    def usable(self) -> bool:
        return self.state.running and bool(self.drivable) and bool(self.host)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "official": self.official, "stage": self.state.stage, "words": self.state.words,
                "hardware": self.state.hardware, "requested_hardware": self.state.requested_hardware,
                "error_message": self.state.error_message, "problem": self.state.problem, "host": self.host,
                "sdk": self.sdk, "sdk_version": self.sdk_version, "likes": self.likes, "private": self.private,
                "listed": self.listed, "drivable": self.drivable, "usable": self.usable, "note": self.note}


def describe_use(config: BridgeConfig, asked: str | None = None, reason: str = "") -> str:
    """The plain line saying which Space answers, so nobody mistakes a duplicate for the official one."""
    if config.space == DEFAULT_SPACE:
        who = f"{config.space} (the official Phi-4-multimodal Space)"
    else:
        who = f"{config.space} (NOT the official {DEFAULT_SPACE}: another Phi-4-multimodal Space)"
    line = f"Using {who} at {config.space_url}"
    if asked and asked not in (AUTO, config.space):
        line += f", because {reason or asked + ' cannot be used'}"
    return line + "."


async def drivable(url: str, headers: dict[str, str] | None = None) -> tuple[bool, str]:
    """Whether the bridge can drive the Space at ``url``: its ``/config`` reads and has a chat chain."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CONFIG_TIMEOUT_S)) as session:
            config = await fetch_config(session, url, headers)
    except Phi4Error as exc:  # an answer other than 200
        return False, f"/config answered HTTP {exc.status}"
    except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
        return False, f"/config could not be read ({type(exc).__name__})"
    problem = chain_problem(config)
    if problem:
        return False, f"the bridge cannot drive it: {problem}"
    return True, f"gradio {config.get('version') or '?'}"


async def _listed(config: BridgeConfig, token: str | None, space: str) -> Candidate:
    try:
        info = await space_info(config, token, space)
    except Exception as exc:  # noqa: BLE001
        return Candidate(space, problem_state(space, exc, token, config.hub_url), listed=True)
    runtime = getattr(info, "runtime", None)
    state = state_from_runtime(space, runtime) if runtime is not None else await space_state(config, space)
    return Candidate(space, state, listed=True, **info_fields(info))


async def _search(config: BridgeConfig, token: str | None, query: str) -> list[Candidate]:
    out = []
    for info in await search_spaces(config, token, query):
        runtime = getattr(info, "runtime", None)
        state = state_from_runtime(info.id, runtime) if runtime is not None else SpaceState(info.id)
        out.append(Candidate(info.id, state, **info_fields(info)))
    return sorted(out, key=lambda c: -(c.likes or 0))


async def _checked(config: BridgeConfig, candidate: Candidate) -> Candidate:
    """Fill in the origin (``/host`` when the listing had none) and, for a running Space, whether it drives."""
    if candidate.state.stage is None and candidate.state.problem is None:
        candidate = replace(candidate, state=await space_state(config, candidate.id))
    if not candidate.state.running:
        return candidate
    host = candidate.host or await space_host(config, candidate.id)
    if not host:
        return replace(candidate, drivable=None, note="the Hub gives no origin for it")
    if candidate.sdk not in (None, "gradio"):
        return replace(candidate, host=host, drivable=False, note=f"a {candidate.sdk} Space, not gradio")
    # a private Space listed to the user's token is asked with it (the Hub vouched for its origin); a public one never
    token = await hf_token(config) if candidate.private is True else None
    ok, note = await drivable(host, headers={"Authorization": f"Bearer {token}"} if token else None)
    return replace(candidate, host=host, drivable=ok, note=note)


async def list_candidates(config: BridgeConfig, *, search: str | None = CANDIDATE_SEARCH,
                          check: bool = True) -> list[Candidate]:
    """The configured short list (the official Space first), then the Hub search's finds, most liked first.

    Raises SpaceUnavailable (``state="unreachable"``) when the Hub cannot be reached at all."""
    token = await hf_token(config)
    ids = list(dict.fromkeys([DEFAULT_SPACE, *config.candidates,
                              *([config.space] if config.space not in (AUTO, "") else [])]))
    listed = await asyncio.gather(*(_listed(config, token, space) for space in ids))
    if all(c.state.problem == "unreachable" for c in listed):
        raise SpaceUnavailable(f"Cannot reach the Hub at {config.hub_url} ({listed[0].state.detail}); check the "
                               "network or --hub-url.", state=UnavailableState.UNREACHABLE)
    found: list[Candidate] = []
    if search:
        try:
            found = [c for c in await _search(config, token, search) if c.id not in ids]
        except Exception as exc:  # noqa: BLE001 - the short list still stands
            log.warning("the Hub search for %r failed: %s", search,
                        problem_state(search, exc, token, config.hub_url).words)
    everything = [*listed, *found]
    if not check:
        return everything
    return list(await asyncio.gather(*(_checked(config, c) for c in everything)))


def pick(candidates: list[Candidate], exclude: tuple[str, ...] = ()) -> Candidate | None:
    """The first usable candidate in order (the official Space first, then the short list, then by likes)."""
    return next((c for c in candidates if c.usable and c.id not in exclude), None)


def none_usable(candidates: list[Candidate]) -> str:
    """Why ``--space auto`` found nothing, Space by Space."""
    parts = []
    for c in candidates[:6]:
        if c.state.running and not c.usable:
            parts.append(f"{c.id} is running but cannot be driven ({c.note or 'no origin'})")
        else:
            parts.append(f"{c.id} {c.state.words}")
    return ("No Phi-4-multimodal Space on the Hub is running and usable right now: " + "; ".join(parts) +
            ". `python -m phi4_bridge spaces` lists them.")


@dataclass(frozen=True)
class Resolved:
    """What the CLI (or the app) should talk to, and what to tell the person about it."""

    config: BridgeConfig
    state: SpaceState | None  # the Hub's word on the Space in use (None: not asked, or auto found nothing)
    asked: str  # the Space asked for (``auto`` or an id)
    note: str = ""  # a line for stderr / the banner ("" when nothing needs saying)


async def resolve(config: BridgeConfig) -> Resolved:
    """Where turns should go, by the Hub's word. SpaceUnavailable when the Space asked for cannot take them."""
    asked = config.space
    if asked == AUTO:
        candidates = await list_candidates(config)
        chosen = pick(candidates)
        if chosen is None:
            raise SpaceUnavailable(none_usable(candidates), state=UnavailableState.NONE_RUNNING)
        official = next((c for c in candidates if c.official), None)
        reason = f"{official.state.sentence()[:-1]}" if official and not chosen.official else ""
        used = replace(config, space=chosen.id, space_url=str(chosen.host), space_url_given=True,
                       private_origin=str(chosen.host) if chosen.private is True else None)
        return Resolved(used, chosen.state, asked, describe_use(used, DEFAULT_SPACE if reason else None, reason))
    state = await space_state(config)
    if state.problem in ("unreachable", "hub_error"):
        log.info("the Hub could not say whether %s runs (%s); trying it anyway", asked, state.detail)
        return Resolved(config, None, asked)
    if state.problem is not None:
        if config.space_url_given:  # a Space the Hub does not show us may still answer at the origin given
            return Resolved(config, state, asked, f"Note: {state.sentence()} Trying {config.space_url} anyway.")
        raise SpaceUnavailable(state.sentence(), state=UnavailableState(state.problem))
    if state.stage == "SLEEPING":
        note = f"Note: {state.sentence()}"
    elif not state.running:
        hint = " `--space auto` uses another Phi-4-multimodal Space that runs." if asked == DEFAULT_SPACE else ""
        raise SpaceUnavailable(state.sentence() + hint,
                               state=STATE_OF_STAGE.get(str(state.stage), UnavailableState.ERROR))
    else:
        note = ""
    if not config.space_url_given:
        host = await space_host(config)
        config = replace(config, space_url=host or config.space_url)
    return Resolved(replace(config, private_origin=await private_origin(config)), state, asked, note)
