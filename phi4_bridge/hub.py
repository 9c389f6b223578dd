"""What the Hub says about a Space: its live stage, its origin, and other Phi-4-multimodal Spaces.

Why: a Space whose Hub page reads "Runtime error" and a network that is down looked the same before ("cannot be
reached"). The Hub answers a Space's stage at ``GET {hub}/api/spaces/{id}/runtime`` and its origin at
``GET {hub}/api/spaces/{id}/host`` (what ``gr.load`` uses); ``list_spaces(search=...)`` finds other Spaces.

- ``space_state(config)``: the stage (RUNNING, RUNTIME_ERROR, SLEEPING, PAUSED, BUILDING...), hardware and error
  message, or the reason it could not be read (``problem``: ``unreachable`` only for a real network failure,
  ``private`` for a 401 without a token, ``not_found`` for a 404, ``token_refused`` for a 401 with one).
  ``SpaceState.sentence()`` says it in words: "microsoft/phi-4-multimodal has a runtime error on the Hub".
- ``list_candidates(config)``: the configured short list (official first) plus the Hub search, most liked first,
  each with its stage, hardware, gradio version, likes and whether the bridge can drive it (its ``/config`` has a
  chat chain that ``chain.find_chain`` finds; ``space_config`` fetches it).
- ``resolve(config)``: what the CLI runs before a turn: ``--space auto`` picks the first RUNNING candidate the
  bridge can drive (the official one preferred), a Space given by id alone gets its origin from the Hub, and a
  Space the Hub reports as not running fails with the stage in words (``SpaceUnavailable``).
- ``space_view(session, config, token)``: ``GET {hub}/api/spaces/{id}`` on the bridge's own aiohttp session, when
  the Space refused the bridge's first request and the bridge asks the Hub why (``Phi4Bridge._discover``).
- ``private_origin(config)``: the Space's origin when the Hub says it is private and the user's token can see it
  (else None). Only then does the bridge send ``Authorization: Bearer <HF token>`` to the Space, and only to that
  origin (``BridgeConfig.private_origin``): a public Space, maybe a stranger's duplicate, would read the user's
  token from its request headers.

huggingface_hub's ``HfApi(endpoint=hub_url)`` does the Hub calls; they block, so they run in a thread, each
bounded by ``HUB_TIMEOUT_S``. Nothing here logs or returns a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import aiohttp

from .chain import chain_problem
from .config import AUTO, CANDIDATE_SEARCH, DEFAULT_SPACE, BridgeConfig
from .errors import Phi4Error, SpaceUnavailable, UnavailableState
from .space_config import fetch_config

log = logging.getLogger(__name__)
T = TypeVar("T")

HUB_TIMEOUT_S = 10.0
CONFIG_TIMEOUT_S = 8.0
SEARCH_LIMIT = 20
RUNNING_STAGES = frozenset({"RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
STAGE_WORDS = {
    "RUNNING": "is running",
    "RUNNING_BUILDING": "is running (a new version is building)",
    "RUNNING_APP_STARTING": "is running (a new version is starting)",
    "RUNTIME_ERROR": "has a runtime error on the Hub",
    "BUILD_ERROR": "failed to build on the Hub",
    "CONFIG_ERROR": "has a configuration error on the Hub",
    "NO_APP_FILE": "has no app file on the Hub",
    "SLEEPING": "is sleeping: opening it wakes it, about a minute",
    "PAUSED": "is paused by its owner",
    "STOPPED": "is stopped",
    "BUILDING": "is building",
    "APP_STARTING": "is starting",
    "DELETING": "is being deleted",
}
STATE_OF_STAGE = {"SLEEPING": UnavailableState.SLEEPING, "PAUSED": UnavailableState.PAUSED,
                  "BUILDING": UnavailableState.BUILDING, "APP_STARTING": UnavailableState.BUILDING}


@dataclass(frozen=True)
class SpaceState:
    """The Hub's word on one Space; ``stage`` is None when the Hub could not be asked (``problem`` says why)."""

    space: str
    stage: str | None = None
    hardware: str | None = None
    requested_hardware: str | None = None
    error_message: str | None = None
    problem: str | None = None  # unreachable | private | not_found | token_refused | hub_error
    detail: str = ""

    @property
    def running(self) -> bool:
        return self.stage in RUNNING_STAGES

    @property
    def words(self) -> str:
        """The stage as a phrase after the Space's id ("has a runtime error on the Hub")."""
        if self.stage is not None:
            return STAGE_WORDS.get(self.stage, f"is in stage {self.stage} on the Hub")
        return {
            "unreachable": "cannot be checked: the Hub cannot be reached",
            "private": "is private or does not exist (the Hub answered HTTP 401 to a request without a token)",
            "not_found": "was not found on the Hub (HTTP 404)",
            "token_refused": "cannot be checked: the Hub refused your Hugging Face token (HTTP 401)",
        }.get(self.problem or "", "cannot be checked: the Hub answered with an error")

    def sentence(self) -> str:
        """One line for a person: the stage, the Space's own error message, and what to do."""
        text = f"{self.space} {self.words}"
        first = (self.error_message or "").strip().splitlines()[0][:200] if (self.error_message or "").strip() else ""
        if first:
            text += f" ({first})"
        if self.problem == "unreachable" and self.detail:
            text += f" ({self.detail}); check the network or --hub-url"
        advice = {
            "private": " If it is your own private Space, set HF_TOKEN (or run `huggingface-cli login`).",
            "not_found": " Check the Space's id; a private Space is found only with a token of an account that can"
                         " see it (HF_TOKEN).",
            "token_refused": " Check HF_TOKEN or run `huggingface-cli login` again.",
        }.get(self.problem or "", "")
        return text + "." + advice

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "running": self.running, "words": self.words}


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


# --- the Hub calls (blocking, in a thread) --------------------------------------------------------------------

def _api(config: BridgeConfig, token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=config.hub_url, token=token if token else False)


async def _token(config: BridgeConfig) -> str | None:
    if config.hf_token:
        return config.hf_token
    from .config import find_hf_token

    return await asyncio.to_thread(find_hf_token)


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), HUB_TIMEOUT_S)


def _problem(space: str, exc: BaseException, token: str | None, hub_url: str) -> SpaceState:
    """A failed Hub call as a SpaceState whose ``problem`` says which failure it was."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError) and getattr(exc, "response", None) is not None:
        status = exc.response.status_code
        if status == 401:
            return SpaceState(space, problem="token_refused" if token else "private", detail="HTTP 401")
        if status in (403, 404):
            return SpaceState(space, problem="not_found", detail=f"HTTP {status}")
        return SpaceState(space, problem="hub_error", detail=f"HTTP {status}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return SpaceState(space, problem="unreachable", detail=f"no answer from {hub_url} in {HUB_TIMEOUT_S:g} s")
    return SpaceState(space, problem="unreachable", detail=f"{type(exc).__name__} at {hub_url}")


def _state_from_runtime(space: str, runtime: Any) -> SpaceState:
    raw = getattr(runtime, "raw", None) or {}
    message = raw.get("errorMessage") if isinstance(raw, dict) else None
    return SpaceState(space, stage=str(runtime.stage), hardware=runtime.hardware,
                      requested_hardware=runtime.requested_hardware,
                      error_message=str(message) if message else None)


async def space_state(config: BridgeConfig, space: str | None = None) -> SpaceState:
    """``GET {hub}/api/spaces/{id}/runtime`` through ``HfApi.get_space_runtime``."""
    space = space or config.space
    token = await _token(config)
    try:
        runtime = await _in_thread(_api(config, token).get_space_runtime, space)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a SpaceState saying which it was
        return _problem(space, exc, token, config.hub_url)
    return _state_from_runtime(space, runtime)


def _get_host(config: BridgeConfig, token: str | None, space: str) -> str | None:
    from huggingface_hub.utils._http import get_session, hf_raise_for_status

    headers = _api(config, token)._build_hf_headers(token=token if token else False)
    resp = get_session().get(f"{config.hub_url}/api/spaces/{space}/host", headers=headers, timeout=HUB_TIMEOUT_S)
    hf_raise_for_status(resp)
    body: Any = resp.json()
    host = body.get("host") if isinstance(body, dict) else None
    if not host and isinstance(body, dict) and body.get("subdomain"):
        host = f"https://{body['subdomain']}.hf.space"
    return str(host).rstrip("/") if host else None


async def space_host(config: BridgeConfig, space: str | None = None) -> str | None:
    """The Space's origin from ``GET {hub}/api/spaces/{id}/host`` (as ``gr.load`` asks), None when unknown."""
    space = space or config.space
    token = await _token(config)
    try:
        return await _in_thread(_get_host, config, token, space)
    except Exception as exc:  # noqa: BLE001
        log.info("no origin from the Hub for %s: %s", space, _problem(space, exc, token, config.hub_url).words)
        return None


async def private_origin(config: BridgeConfig, space: str | None = None) -> str | None:
    """The Space's origin from the Hub when the Hub says it is private and the user's HF token can see it; None
    for a public Space, without a token, or when the Hub does not show it to this token."""
    space = space or config.space
    token = await _token(config)
    if not token:
        return None
    try:
        info = await _in_thread(_api(config, token).space_info, space)
    except Exception as exc:  # noqa: BLE001 - not visible to this token (or no Hub): never send it the token
        log.info("%s: no private access (%s)", space, _problem(space, exc, token, config.hub_url).words)
        return None
    if getattr(info, "private", None) is not True:
        return None
    return _info_fields(info)["host"] or await space_host(config, space)


def space_auth(config: BridgeConfig, url: str, token: str | None) -> dict[str, str]:
    """``Authorization: Bearer <token>`` for a request to ``url`` when ``url`` is on the private Space's origin
    the Hub vouched for (``config.private_origin``); else nothing."""
    if token and config.private_origin and same_origin(url, config.private_origin):
        return {"Authorization": f"Bearer {token}"}
    return {}


def same_origin(url: str, origin: str) -> bool:
    from yarl import URL

    a, b = URL(url), URL(origin)
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port) and a.host is not None


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


def _info_fields(info: Any) -> dict[str, Any]:
    card = getattr(info, "card_data", None)
    sdk_version = getattr(card, "sdk_version", None) if card is not None else None
    if sdk_version is None and isinstance(card, dict):
        sdk_version = card.get("sdk_version")
    host = getattr(info, "host", None)
    if not host and getattr(info, "subdomain", None):
        host = f"https://{info.subdomain}.hf.space"
    return {"host": str(host).rstrip("/") if host else None, "sdk": getattr(info, "sdk", None),
            "sdk_version": str(sdk_version) if sdk_version else None, "likes": getattr(info, "likes", None),
            "private": getattr(info, "private", None)}


async def _listed(config: BridgeConfig, token: str | None, space: str) -> Candidate:
    try:
        info = await _in_thread(_api(config, token).space_info, space)
    except Exception as exc:  # noqa: BLE001
        return Candidate(space, _problem(space, exc, token, config.hub_url), listed=True)
    runtime = getattr(info, "runtime", None)
    state = _state_from_runtime(space, runtime) if runtime is not None else await space_state(config, space)
    return Candidate(space, state, listed=True, **_info_fields(info))


async def _search(config: BridgeConfig, token: str | None, query: str) -> list[Candidate]:
    def run() -> list[Any]:
        return list(_api(config, token).list_spaces(
            search=query, sort="likes", limit=SEARCH_LIMIT,
            expand=["author", "likes", "runtime", "cardData", "sdk", "private", "subdomain"]))

    infos = await _in_thread(run)
    out = []
    for info in infos:
        runtime = getattr(info, "runtime", None)
        state = _state_from_runtime(info.id, runtime) if runtime is not None else SpaceState(info.id)
        out.append(Candidate(info.id, state, **_info_fields(info)))
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
    token = await _token(config) if candidate.private is True else None
    ok, note = await drivable(host, headers={"Authorization": f"Bearer {token}"} if token else None)
    return replace(candidate, host=host, drivable=ok, note=note)


async def list_candidates(config: BridgeConfig, *, search: str | None = CANDIDATE_SEARCH,
                          check: bool = True) -> list[Candidate]:
    """The configured short list (the official Space first), then the Hub search's finds, most liked first.

    Raises SpaceUnavailable (``state="unreachable"``) when the Hub cannot be reached at all."""
    token = await _token(config)
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
            log.warning("the Hub search for %r failed: %s", search, _problem(search, exc, token, config.hub_url).words)
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


# --- the Hub on an aiohttp session ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpaceView:
    """What ``GET {hub}/api/spaces/{id}`` answered: ``problem`` when the Hub does not show the Space to us
    (``private``, ``token_refused``, ``not_found``), else whether it is private and its origin (None: not said)."""

    problem: str | None = None
    private: bool = False
    host: str | None = None


async def space_view(session: aiohttp.ClientSession, config: BridgeConfig, token: str | None) -> SpaceView:
    """``GET {hub}/api/spaces/{id}`` on ``session`` (the caller's own, with its timeouts), with the user's token
    when there is one. A network failure raises aiohttp's (or the timeout's) error; an answer that is not the
    Space's JSON shows a public Space with no origin."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(f"{config.hub_url}/api/spaces/{config.space}", headers=headers) as resp:
        status, body = resp.status, await resp.text()
    problem = {401: "token_refused" if token else "private", 403: "not_found", 404: "not_found"}.get(status)
    if problem is not None:
        return SpaceView(problem=problem)
    try:
        info = json.loads(body) if status == 200 else {}
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        return SpaceView()
    return SpaceView(private=info.get("private") is True, host=str(info.get("host") or "").rstrip("/") or None)
