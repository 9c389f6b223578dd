"""What the Hub says about a Space: its live stage, its origin, whether it is private. Every call to the Hub lives
here; which Space to use (the other Phi-4-multimodal Spaces, ``--space auto``, ``resolve``) is ``spaces``.

Why: a Space whose Hub page reads "Runtime error" and a network that is down looked the same before ("cannot be
reached"). The Hub answers a Space's stage at ``GET {hub}/api/spaces/{id}/runtime``, its origin at
``GET {hub}/api/spaces/{id}/host`` (what ``gr.load`` uses), what it is at ``GET {hub}/api/spaces/{id}``, and
``list_spaces(search=...)`` finds other Spaces.

- ``space_state(config)``: the stage (RUNNING, RUNTIME_ERROR, SLEEPING, PAUSED, BUILDING...), hardware and error
  message, or the reason it could not be read (``problem``: ``unreachable`` only for a real network failure,
  ``private`` for a 401 without a token, ``not_found`` for a 404, ``token_refused`` for a 401 with one).
  ``SpaceState.sentence()`` says it in words: "microsoft/phi-4-multimodal has a runtime error on the Hub".
- ``space_host(config)``: the Space's origin; ``space_info`` and ``search_spaces``: the Hub's ``SpaceInfo`` of one
  Space, and of the Spaces a search finds (most liked first), read by ``info_fields``.
- ``private_origin(config)``: the Space's origin when the Hub says it is private and the user's token can see it
  (else None). Only then does the bridge send ``Authorization: Bearer <HF token>`` to the Space, and only to that
  origin (``BridgeConfig.private_origin``, ``space_auth``): a public Space, maybe a stranger's duplicate, would
  read the user's token from its request headers.
- ``space_view(session, config, token)``: ``GET {hub}/api/spaces/{id}`` on the bridge's own aiohttp session, when
  the Space refused the bridge's first request and the bridge asks the Hub why (``Phi4Bridge._discover``).

huggingface_hub's ``HfApi(endpoint=hub_url)`` does the other Hub calls; they block, so they run in a thread, each
bounded by ``HUB_TIMEOUT_S``. Nothing here logs or returns a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import aiohttp

from .config import BridgeConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

HUB_TIMEOUT_S = 10.0
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


# --- the Hub calls (blocking, in a thread) --------------------------------------------------------------------

def _api(config: BridgeConfig, token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=config.hub_url, token=token if token else False)


async def hf_token(config: BridgeConfig) -> str | None:
    """The user's HF token: the configured one, else ``HF_TOKEN`` or ``huggingface-cli login``; None without."""
    if config.hf_token:
        return config.hf_token
    from .config import find_hf_token

    return await asyncio.to_thread(find_hf_token)


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    async with asyncio.timeout(HUB_TIMEOUT_S):  # not wait_for, which on 3.11 can lose a cancel (protocol.py)
        return await asyncio.to_thread(fn, *args, **kwargs)


def problem_state(space: str, exc: BaseException, token: str | None, hub_url: str) -> SpaceState:
    """A failed Hub call (of ``HfApi``) as a SpaceState whose ``problem`` says which failure it was."""
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


def state_from_runtime(space: str, runtime: Any) -> SpaceState:
    """The stage, hardware and error message of an ``HfApi`` ``SpaceRuntime``."""
    raw = getattr(runtime, "raw", None) or {}
    message = raw.get("errorMessage") if isinstance(raw, dict) else None
    return SpaceState(space, stage=str(runtime.stage), hardware=runtime.hardware,
                      requested_hardware=runtime.requested_hardware,
                      error_message=str(message) if message else None)


async def space_state(config: BridgeConfig, space: str | None = None) -> SpaceState:
    """``GET {hub}/api/spaces/{id}/runtime`` through ``HfApi.get_space_runtime``."""
    space = space or config.space
    token = await hf_token(config)
    try:
        runtime = await _in_thread(_api(config, token).get_space_runtime, space)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a SpaceState saying which it was
        return problem_state(space, exc, token, config.hub_url)
    return state_from_runtime(space, runtime)


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
    token = await hf_token(config)
    try:
        return await _in_thread(_get_host, config, token, space)
    except Exception as exc:  # noqa: BLE001
        log.info("no origin from the Hub for %s: %s", space, problem_state(space, exc, token, config.hub_url).words)
        return None


async def space_info(config: BridgeConfig, token: str | None, space: str) -> Any:
    """The Hub's ``SpaceInfo`` of ``space`` (``GET {hub}/api/spaces/{id}``, ``HfApi.space_info``); raises what the
    call raised (``problem_state`` says it)."""
    return await _in_thread(_api(config, token).space_info, space)


async def search_spaces(config: BridgeConfig, token: str | None, query: str) -> list[Any]:
    """The ``SpaceInfo`` of the Spaces the Hub's search for ``query`` finds (most liked first, ``SEARCH_LIMIT``
    at most), each with its runtime; raises what the call raised."""
    def run() -> list[Any]:
        return list(_api(config, token).list_spaces(
            search=query, sort="likes", limit=SEARCH_LIMIT,
            expand=["author", "likes", "runtime", "cardData", "sdk", "private", "subdomain"]))

    return await _in_thread(run)


async def private_origin(config: BridgeConfig, space: str | None = None) -> str | None:
    """The Space's origin from the Hub when the Hub says it is private and the user's HF token can see it; None
    for a public Space, without a token, or when the Hub does not show it to this token."""
    space = space or config.space
    token = await hf_token(config)
    if not token:
        return None
    try:
        info = await space_info(config, token, space)
    except Exception as exc:  # noqa: BLE001 - not visible to this token (or no Hub): never send it the token
        log.info("%s: no private access (%s)", space, problem_state(space, exc, token, config.hub_url).words)
        return None
    if getattr(info, "private", None) is not True:
        return None
    return info_fields(info)["host"] or await space_host(config, space)


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


def info_fields(info: Any) -> dict[str, Any]:
    """What the Hub's ``SpaceInfo`` says of a Space: its origin, sdk and gradio version, likes, private or not."""
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
